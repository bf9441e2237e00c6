package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/clikit"
)

const inventory = "../../configs/hil-mock.example.yaml"

// syncBuf is a bytes.Buffer safe to read while the command writes.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func run(t *testing.T, ctx context.Context, stdin string, args ...string) (int, string, string) {
	t.Helper()
	root := newRoot()
	var out, errb syncBuf
	root.SetOut(&out)
	root.SetIn(strings.NewReader(stdin))
	code := clikit.Run(ctx, root, args, &errb)
	return code, out.String(), errb.String()
}

func TestCommands(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "hil.db")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("projects: [a, a]\n"), 0o644)
	tests := map[string]struct {
		stdin string
		args  []string
		code  int
		out   string // regexp on stdout, or on stderr when code != 0
	}{
		"check good":        {args: []string{"check", inventory}, code: 0, out: `ok \(3 projects, 4 users, 4 nodes, 4 networks\)`},
		"check bad":         {args: []string{"check", bad}, code: 1, out: `project "a" listed twice`},
		"check missing":     {args: []string{"check", "/nonexistent.yaml"}, code: 1, out: `no such file`},
		"check no argument": {args: []string{"check"}, code: 2, out: `takes 1 argument`},
		"hash":              {stdin: "s3cret\n", args: []string{"hash-password"}, code: 0, out: `^pbkdf2-sha256\$100000\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+\n$`},
		"hash empty":        {stdin: "\n", args: []string{"hash-password"}, code: 2, out: `empty`},
		"seed":              {args: []string{"--db", db, "seed", inventory}, code: 0, out: `25 object\(s\) added`},
		"unknown command":   {args: []string{"frobnicate"}, code: 2, out: `unknown command`},
		"serve extra arg":   {args: []string{"serve", "x"}, code: 2, out: `takes no arguments`},
	}
	for _, name := range []string{"check good", "check bad", "check missing", "check no argument", "hash", "hash empty", "seed", "unknown command", "serve extra arg"} {
		tc := tests[name]
		t.Run(name, func(t *testing.T) {
			code, out, errs := run(t, ctx, tc.stdin, tc.args...)
			text := out
			if tc.code != 0 {
				text = errs
			}
			if code != tc.code || !regexp.MustCompile(tc.out).MatchString(text) {
				t.Fatalf("hil-mock %q: exit %d, stdout %q, stderr %q; want exit %d and %q", tc.args, code, out, errs, tc.code, tc.out)
			}
		})
	}
	// Seeding again adds nothing.
	if code, out, _ := run(t, ctx, "", "--db", db, "seed", inventory); code != 0 || !strings.Contains(out, " 0 object(s)") {
		t.Fatalf("second seed: %d %q", code, out)
	}
}

// TestServe runs `hil-mock serve` on an ephemeral loopback port, calls the
// API, stops it with its context, and serves the same database again.
func TestServe(t *testing.T) {
	db := filepath.Join(t.TempDir(), "hil.db")
	serve := func(args ...string) (string, func()) {
		ctx, cancel := context.WithCancel(context.Background())
		root := newRoot()
		var out, errb syncBuf
		root.SetOut(&out)
		done := make(chan int, 1)
		go func() {
			done <- clikit.Run(ctx, root, append([]string{"--db", db, "--log-format", "json", "serve", "--listen", "127.0.0.1:0"}, args...), &errb)
		}()
		re := regexp.MustCompile(`listening on (http://\S+)`)
		deadline := time.Now().Add(30 * time.Second)
		for !re.MatchString(out.String()) {
			select {
			case code := <-done:
				t.Fatalf("serve exited %d: %s", code, errb.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatal("serve did not start")
			}
			time.Sleep(10 * time.Millisecond)
		}
		return re.FindStringSubmatch(out.String())[1], func() {
			cancel()
			if code := <-done; code != 0 {
				t.Errorf("serve exit %d: %s", code, errb.String())
			}
		}
	}
	get := func(url string) (int, string) {
		req, _ := http.NewRequest("GET", url, nil)
		req.SetBasicAuth("hiladmin", "admin-secret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	url, stop := serve("--inventory", inventory)
	if st, b := get(url + "/v0/nodes/all"); st != 200 || b != `["node-01","node-02","node-03","node-04"]` {
		t.Fatalf("nodes: %d %s", st, b)
	}
	req, _ := http.NewRequest("DELETE", url+"/v0/network/public", nil)
	req.SetBasicAuth("hiladmin", "admin-secret")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("delete network: %v %v", resp, err)
	}
	stop()
	// Restart with the inventory: the database exists, so it is not
	// re-applied and the deleted network stays deleted.
	url, stop = serve("--inventory", inventory)
	defer stop()
	if st, _ := get(url + "/v0/network/public"); st != 404 {
		t.Fatalf("deleted network after restart: %d, want 404", st)
	}
	if st, _ := get(url + "/v0/network/bmi-provision"); st != 200 {
		t.Fatalf("seeded network after restart: %d", st)
	}
}
