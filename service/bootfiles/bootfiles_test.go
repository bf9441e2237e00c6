package bootfiles

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/bmi-go/bmi/service/fault"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var entry = Entry{Node: "node1", MAC: net.HardwareAddr{0x52, 0x54, 0, 0xAB, 0xCD, 0x01}, Image: "centos7",
	Portal: "10.0.0.5", Target: "iqn.2026-11.org.bmi:1img7"}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n%s", name, got)
	}
}

func writer(t *testing.T) *Writer {
	d := t.TempDir()
	w := &Writer{PXELinuxDir: filepath.Join(d, "pxelinux.cfg"), IPXEDir: d}
	if err := os.Mkdir(w.PXELinuxDir, 0o755); err != nil {
		t.Fatal(err)
	}
	return w
}

// TestOriginalFormat checks the files against the original's templates
// (reference bmi-original.md §5.1) with its hard-coded net2.
func TestOriginalFormat(t *testing.T) {
	w := writer(t)
	w.Interface = "net2"
	if err := w.Write(context.Background(), entry); err != nil {
		t.Fatal(err)
	}
	ipxe, _ := os.ReadFile(filepath.Join(w.IPXEDir, "node1.ipxe"))
	pxe, err := os.ReadFile(filepath.Join(w.PXELinuxDir, "01-52-54-00-ab-cd-01"))
	if err != nil {
		t.Fatalf("pxelinux file not at 01-<lower-case dashed mac>: %v", err)
	}
	wantIPXE := "#!ipxe\n      set keep-san 1\n      ifconf --configurator=dhcp net2\n      sanboot --keep iscsi:10.0.0.5:tcp:3260:1:iqn.2026-11.org.bmi:1img7\n      boot\n"
	if string(ipxe) != wantIPXE {
		t.Errorf("node1.ipxe =\n%q\nwant\n%q", ipxe, wantIPXE)
	}
	golden(t, "01-52-54-00-ab-cd-01", pxe)
	for p, mode := range map[string]os.FileMode{filepath.Join(w.IPXEDir, "node1.ipxe"): 0o755, filepath.Join(w.PXELinuxDir, "01-52-54-00-ab-cd-01"): 0o644} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v (%v)", p, st.Mode().Perm(), mode, err)
		}
	}
}

func TestDefaultInterface(t *testing.T) {
	w := writer(t)
	golden(t, "node1.ipxe", []byte(w.IPXEScript(entry)))
}

func TestRewriteAndRemove(t *testing.T) {
	w := writer(t)
	ctx := context.Background()
	if err := w.Write(ctx, entry); err != nil {
		t.Fatal(err)
	}
	e2 := entry
	e2.Image = "ubuntu"
	if err := w.Write(ctx, e2); err != nil {
		t.Fatal(err)
	}
	pxe, _ := os.ReadFile(filepath.Join(w.PXELinuxDir, PXELinuxName(entry.MAC)))
	if !bytes.Contains(pxe, []byte("LABEL ubuntu\n")) {
		t.Errorf("rewrite did not replace the file:\n%s", pxe)
	}
	if err := w.Remove(ctx, "node1", entry.MAC); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{w.IPXEDir, w.PXELinuxDir} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if !e.IsDir() {
				t.Errorf("left behind after Remove: %s/%s", dir, e.Name())
			}
		}
	}
	if err := w.Remove(ctx, "node1", entry.MAC); err != nil {
		t.Errorf("second Remove = %v, want nil", err)
	}
}

func TestInvalid(t *testing.T) {
	tests := map[string]func(*Entry){
		"node with slash":     func(e *Entry) { e.Node = "../etc/x" },
		"node with newline":   func(e *Entry) { e.Node = "n\nboot" },
		"node empty":          func(e *Entry) { e.Node = "" },
		"image with space":    func(e *Entry) { e.Image = "a b" },
		"image with newline":  func(e *Entry) { e.Image = "a\nKERNEL evil" },
		"target with newline": func(e *Entry) { e.Target = "t\nreboot" },
		"portal":              func(e *Entry) { e.Portal = "${x}" },
		"mac":                 func(e *Entry) { e.MAC = nil },
	}
	for name, mod := range tests {
		t.Run(name, func(t *testing.T) {
			w := writer(t)
			e := entry
			mod(&e)
			if err := w.Write(context.Background(), e); !errors.Is(err, fault.ErrInvalid) {
				t.Fatalf("Write = %v, want invalid", err)
			}
			for _, dir := range []string{w.IPXEDir, w.PXELinuxDir} {
				ents, _ := os.ReadDir(dir)
				for _, de := range ents {
					if !de.IsDir() {
						t.Errorf("bad input left %s", de.Name())
					}
				}
			}
		})
	}
}

func TestWriteFailsCleanly(t *testing.T) {
	w := writer(t)
	w.PXELinuxDir = filepath.Join(w.IPXEDir, "missing")
	if err := w.Write(context.Background(), entry); err == nil {
		t.Fatal("Write into a missing directory succeeded")
	}
	ents, _ := os.ReadDir(w.IPXEDir)
	for _, de := range ents {
		if !de.IsDir() {
			t.Errorf("failed Write left %s", de.Name())
		}
	}
}
