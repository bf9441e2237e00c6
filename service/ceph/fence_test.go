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
// binary with BMI_FENCE_HELPER=<conf>,<pool>,<image> to be the client that
// takes an image's exclusive lock and is then killed, as a crashed bmid.
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
	img, err := s.Open(ctx, f[2])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := img.WriteAt(bytes.Repeat([]byte{1}, 4096), 0); err != nil { // takes the exclusive lock
		t.Fatal(err)
	}
	if err := img.Flush(); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("LOCKED\n")
	time.Sleep(10 * time.Minute) // killed by the test
}

// TestFenceStaleOwner: a client that held an image's exclusive lock is
// SIGKILLed (a crashed bmid); its watch stays on the image. A new process
// opening the image fences it: the old client is blocklisted (its watch is
// gone at once) and its lock broken; the new process writes; fencing again
// finds nothing to fence (never itself).
func TestFenceStaleOwner(t *testing.T) {
	s, p := newStore(t)
	conf, pool := clusterOf(t)
	ctx := context.Background()
	name := p + cephtest.Prefix(t)[1:9] + "-fence"
	mustOK(t, s.Create(ctx, name, 4<<20))
	defer cleanup(t, s, name)

	cmd := exec.Command(os.Args[0], "-test.run=^TestFenceHelperProcess$")
	cmd.Env = append(os.Environ(), "BMI_FENCE_HELPER="+conf+","+pool+","+name)
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

	img, err := s.Open(ctx, name)
	mustOK(t, err)
	defer img.Close()
	if st, err := s.Stat(ctx, name); err != nil || st.Watchers != 2 {
		t.Fatalf("before fencing: watchers %d (%v), want 2: ours and the dead client's", st.Watchers, err)
	}
	fenced, err := img.FenceStaleOwner(ctx)
	mustOK(t, err)
	if len(fenced) != 1 || !strings.Contains(fenced[0], ":0/") {
		t.Fatalf("fenced %v, want the dead client", fenced)
	}
	if st, err := s.Stat(ctx, name); err != nil || st.Watchers != 1 {
		t.Fatalf("after fencing: watchers %d (%v), want 1 (ours): the dead client's watch must be gone", st.Watchers, err)
	}
	bl, err := exec.Command("ceph", "--conf", conf, "osd", "blocklist", "ls").CombinedOutput()
	if err != nil || !bytes.Contains(bl, []byte(fenced[0])) {
		t.Fatalf("ceph osd blocklist ls: %v\n%s", err, bl)
	}
	if _, err := img.WriteAt(bytes.Repeat([]byte{2}, 4096), 0); err != nil {
		t.Fatalf("write after fencing: %v", err)
	}
	mustOK(t, img.Flush())
	if again, err := img.FenceStaleOwner(ctx); err != nil || len(again) != 0 {
		t.Fatalf("fencing again (we hold the lock now): %v, %v; want nothing fenced", again, err)
	}
}
