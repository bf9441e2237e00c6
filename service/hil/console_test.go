package hil_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/hil"
	"github.com/bmi-go/bmi/service/hilmock"
)

// TestConsole reads a node's serial console through HIL's console API
// (hil-mock over log files, as in the lab): the output written after the
// stream opened, to the node's project only; 409 where consoles are off.
func TestConsole(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "node-01.log")
	if err := os.WriteFile(log, []byte("an earlier boot\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := startMockConsoles(t, nil, hilmock.FileConsoles{Path: func(n hilmock.Node) string { return filepath.Join(dir, n.Name+".log") }})
	c := hil.New(m.srv.URL(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc, err := c.Console(ctx, alice, "node-01")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got bytes.Buffer
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := rc.Read(buf)
			mu.Lock()
			got.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				done <- err
				return
			}
		}
	}()
	f, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("BMI-LAB-BOOTED node-01 mode=ibft \n"); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		s := got.String()
		mu.Unlock()
		if strings.Contains(s, "BMI-LAB-BOOTED node-01") {
			if strings.Contains(s, "an earlier boot") {
				t.Fatalf("the stream replayed output from before it opened: %q", s)
			}
			break
		}
		if time.Now().After(end) {
			t.Fatalf("console stream: %q, want the line written after it opened", s)
		}
	}
	rc.Close()
	cancel()
	if err := <-done; err == nil {
		t.Error("the stream did not end")
	}

	ctx2 := context.Background()
	if _, err := c.Console(ctx2, bob, "node-01"); !errors.Is(err, fault.ErrForbidden) {
		t.Errorf("bob read tenant-a's console: %v, want forbidden", err)
	}
	off := hil.New(startMock(t, nil).srv.URL(), nil)
	if _, err := off.Console(ctx2, alice, "node-01"); err == nil || !strings.Contains(err.Error(), "OBM is not enabled") {
		t.Errorf("console without a console driver: %v, want HIL's 409 BlockedError", err)
	}
}
