//go:build ceph_preview

package ceph

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/cephtest"
	"github.com/bmi-go/bmi/service/logging"
)

// TestFenceHelperProcess is not a test: TestFenceStaleOwner runs the test
// binary with BMI_FENCE_HELPER=<conf>,<pool>,<image>[,<image>...] to be
// the client that takes images' exclusive locks and is then killed, as a
// crashed bmid.
func TestFenceHelperProcess(t *testing.T) {
	arg := os.Getenv("BMI_FENCE_HELPER")
	if arg == "" {
		t.Skip("helper process of TestFenceStaleOwner")
	}
	f := strings.Split(arg, ",")
	ctx := context.Background()
	s, err := Dial(ctx, Config{Conf: f[0], Pool: f[1], OpTimeout: 30 * time.Second}, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range f[2:] {
		img, err := s.Open(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := img.WriteAt(bytes.Repeat([]byte{1}, 4096), 0); err != nil { // takes the exclusive lock
			t.Fatal(err)
		}
		if err := img.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	os.Stdout.WriteString("LOCKED\n")
	time.Sleep(10 * time.Minute) // killed by the test
}

// TestFenceStaleOwner: a client that held two images' exclusive locks is
// SIGKILLed (a crashed bmid); its watches stay on the images. A new
// process opening them fences it: the old client is blocklisted once (its
// watches are gone at once) and both locks broken; the new process
// writes; fencing again finds nothing to fence (never itself).
func TestFenceStaleOwner(t *testing.T) {
	s, p := newStore(t)
	conf, pool := clusterOf(t)
	ctx := context.Background()
	names := []string{p + cephtest.Prefix(t)[1:9] + "-fence1", p + cephtest.Prefix(t)[1:9] + "-fence2"}
	for _, n := range names {
		mustOK(t, s.Create(ctx, n, 4<<20))
	}
	defer cleanup(t, s, names...)
	listed := func() int {
		out, err := exec.Command("ceph", "--conf", conf, "osd", "blocklist", "ls").CombinedOutput()
		if err != nil {
			t.Fatalf("ceph osd blocklist ls: %v\n%s", err, out)
		}
		return bytes.Count(out, []byte(":0/"))
	}
	before := listed()

	cmd := exec.Command(os.Args[0], "-test.run=^TestFenceHelperProcess$")
	cmd.Env = append(os.Environ(), "BMI_FENCE_HELPER="+conf+","+pool+","+strings.Join(names, ","))
	out, err := cmd.StdoutPipe()
	mustOK(t, err)
	cmd.Stderr = os.Stderr
	mustOK(t, cmd.Start())
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "LOCKED" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("helper: %q", line)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()

	var imgs []*Image
	for _, n := range names {
		img, err := s.Open(ctx, n)
		mustOK(t, err)
		defer img.Close()
		imgs = append(imgs, img)
		if st, err := s.Stat(ctx, n); err != nil || st.Watchers != 2 {
			t.Fatalf("%s before fencing: watchers %d (%v), want 2: ours and the dead client's", n, st.Watchers, err)
		}
	}
	var dead string
	for i, n := range names {
		img := imgs[i]
		fenced, err := img.FenceStaleOwner(ctx)
		mustOK(t, err)
		if len(fenced) != 1 || !strings.Contains(fenced[0], ":0/") || (dead != "" && fenced[0] != dead) {
			t.Fatalf("%s: fenced %v, want the dead client (%s)", n, fenced, dead)
		}
		dead = fenced[0]
		if st, err := s.Stat(ctx, n); err != nil || st.Watchers != 1 {
			t.Fatalf("%s after fencing: watchers %d (%v), want 1 (ours): the dead client's watch must be gone", n, st.Watchers, err)
		}
		if _, err := img.WriteAt(bytes.Repeat([]byte{2}, 4096), 0); err != nil {
			t.Fatalf("write after fencing: %v", err)
		}
		mustOK(t, img.Flush())
		if again, err := img.FenceStaleOwner(ctx); err != nil || len(again) != 0 {
			t.Fatalf("fencing again (we hold the lock now): %v, %v; want nothing fenced", again, err)
		}
	}
	// One blocklist entry for the dead client, however many locks it held.
	if got := listed() - before; got != 1 {
		t.Fatalf("%d new blocklist entries, want 1 (the dead client, once)", got)
	}
}

// TestFenceClient: a gateway that is alive but paused (here: a second
// client of this process with the image open, not holding its lock, as a
// gateway whose node was idle) is fenced by its address (ClientAddr): the
// fencer writes, and when the fenced client wakes up its writes fail (it
// would otherwise ask for the lock back and get it) and do not land.
// Fencing one's own address is refused.
func TestFenceClient(t *testing.T) {
	a, p := newStore(t)
	b, _ := newStore(t)
	ctx := context.Background()
	name := p + cephtest.Prefix(t)[1:9] + "-fencecl"
	mustOK(t, a.Create(ctx, name, 4<<20))
	defer cleanup(t, a, name)
	addrA, err := a.ClientAddr()
	mustOK(t, err)
	addrB, err := b.ClientAddr()
	mustOK(t, err)
	if addrA == addrB || !strings.Contains(addrB, ":0/") {
		t.Fatalf("client addresses %q and %q: want two distinct ip:port/nonce", addrA, addrB)
	}
	if err := a.Fence(ctx, addrA); err == nil {
		t.Fatal("a client fenced itself")
	}
	imgB, err := b.Open(ctx, name)
	mustOK(t, err)
	defer imgB.Close()
	buf := make([]byte, 4096)
	if _, err := imgB.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}

	mustOK(t, a.Fence(ctx, addrB))
	imgA, err := a.Open(ctx, name)
	mustOK(t, err)
	defer imgA.Close()
	if fenced, err := imgA.FenceStaleOwner(ctx); err != nil || len(fenced) != 0 {
		t.Fatalf("lock owners to break: %v, %v; want none (b never wrote)", fenced, err)
	}
	if _, err := imgA.WriteAt(bytes.Repeat([]byte{2}, 4096), 0); err != nil {
		t.Fatalf("write after fencing: %v", err)
	}
	mustOK(t, imgA.Flush())
	// The fenced client wakes up and writes: refused.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	werr := make(chan error, 1)
	go func() {
		_, err := imgB.WriteAt(bytes.Repeat([]byte{9}, 4096), 4096)
		if err == nil {
			err = imgB.Flush()
		}
		werr <- err
	}()
	select {
	case err := <-werr:
		if err == nil {
			t.Fatal("the fenced client still writes")
		}
	case <-wctx.Done():
		// Still blocked: it did not write either; the check below says.
	}
	got := make([]byte, 2*4096)
	if _, err := imgA.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Repeat([]byte{2}, 4096), make([]byte, 4096)...)
	if !bytes.Equal(got, want) {
		t.Fatalf("disk after fencing: the fenced client's write landed or ours is missing (first bytes of each block: %d %d)", got[0], got[4096])
	}
}
