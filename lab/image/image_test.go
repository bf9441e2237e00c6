package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/service/logging"
)

// requireTools stops the test unless every build tool is installed.
func requireTools(t *testing.T) {
	t.Helper()
	for name, pkg := range Tools {
		testenv.RequireCommand(t, name, pkg)
	}
	if _, err := os.Stat("/usr/lib/syslinux/mbr/mbr.bin"); err != nil {
		testenv.Missing(t, "/usr/lib/syslinux/mbr/mbr.bin", "install the Debian package syslinux-common (make deps)")
	}
	if _, err := os.Stat(SystemdBoot); err != nil {
		testenv.Missing(t, SystemdBoot, "install the Debian package systemd-boot-efi (make deps)")
	}
	if ks, _ := filepath.Glob("/boot/vmlinuz-*"); len(ks) == 0 {
		testenv.Missing(t, "a kernel in /boot", "install the Debian package linux-image-amd64 (make deps)")
	}
}

func sum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestBuildDeterministicAndCached(t *testing.T) {
	requireTools(t)
	ctx := context.Background()
	a, err := Build(ctx, Options{CacheDir: t.TempDir(), Log: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	if a.Cached {
		t.Fatal("first build in an empty cache reported Cached")
	}
	t.Logf("built %s in %v", a.Path, a.Took)
	b, err := Build(ctx, Options{CacheDir: t.TempDir(), Log: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	if a.Key != b.Key || sum(t, a.Path) != sum(t, b.Path) {
		t.Fatalf("two builds from the same inputs differ: %s vs %s", a.Path, b.Path)
	}
	c, err := Build(ctx, Options{CacheDir: filepath.Dir(a.Path), Log: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Cached || c.Path != a.Path {
		t.Fatalf("second build in the same cache: cached=%v path=%s, want the cached %s", c.Cached, c.Path, a.Path)
	}

	// Layout: MBR signature, partition 1 bootable FAT16 at P1Start with
	// SYSLINUX's boot sector, a zeroed state record.
	f, err := os.Open(a.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	if st.Size() != Sectors*512 {
		t.Errorf("size %d, want %d", st.Size(), Sectors*512)
	}
	mbr := make([]byte, 512)
	if _, err := io.ReadFull(f, mbr); err != nil {
		t.Fatal(err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xaa || mbr[446] != 0x80 || mbr[450] != 0xef || mbr[466] != 0xda {
		t.Errorf("bad MBR: sig %x %x, boot %x, types %x %x", mbr[510], mbr[511], mbr[446], mbr[450], mbr[466])
	}
	if s := binary.LittleEndian.Uint32(mbr[454:]); s != P1Start {
		t.Errorf("partition 1 starts at %d, want %d", s, P1Start)
	}
	boot := make([]byte, 512)
	if _, err := f.ReadAt(boot, P1Start*512); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(boot, []byte("SYSLINUX")) || !bytes.Contains(boot, []byte("FAT16")) {
		t.Errorf("partition 1 boot sector has no SYSLINUX/FAT16 mark")
	}
	// The same partition is the ESP: systemd-boot as the removable-media
	// loader, its entry booting the kernel and initramfs SYSLINUX boots.
	efi, err := os.ReadFile(SystemdBoot)
	if err != nil {
		t.Fatal(err)
	}
	fatFile := func(name string) []byte {
		t.Helper()
		cmd := exec.Command("mcopy", "-n", "-i", fmt.Sprintf("%s@@%d", a.Path, P1Start*512), "::"+name, "-")
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("mcopy %s out of partition 1: %v", name, err)
		}
		return out
	}
	if !bytes.Equal(fatFile("/EFI/BOOT/BOOTX64.EFI"), efi) {
		t.Errorf("/EFI/BOOT/BOOTX64.EFI is not %s", SystemdBoot)
	}
	if got, want := string(fatFile("/loader/entries/bmi.conf")), bootEntry(KernelCmdline); got != want {
		t.Errorf("loader entry:\n%s\nwant:\n%s", got, want)
	}
	if got := string(fatFile("/loader/loader.conf")); !strings.Contains(got, "default bmi.conf") || !strings.Contains(got, "timeout 0") {
		t.Errorf("loader.conf does not boot the entry at once:\n%s", got)
	}
	rec := make([]byte, 512)
	if _, err := f.ReadAt(rec, StateOffset); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rec, make([]byte, 512)) {
		t.Errorf("state record of a fresh image is not empty")
	}
}

func TestWriteCpioDeterministic(t *testing.T) {
	fs := map[string]file{
		"init":        {mode: modeFile | 0o755, data: []byte("#!/bin/sh\n")},
		"bin":         {mode: modeDir | 0o755},
		"bin/sh":      {mode: modeLink | 0o777, data: []byte("busybox")},
		"bin/busybox": {mode: modeFile | 0o755, data: []byte("x")},
	}
	var a, b bytes.Buffer
	if err := writeCpio(&a, fs); err != nil {
		t.Fatal(err)
	}
	if err := writeCpio(&b, fs); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) || a.Len()%4 != 0 {
		t.Fatal("cpio output not deterministic or not 4-byte aligned")
	}
	if !bytes.HasPrefix(a.Bytes(), []byte("070701")) || !bytes.Contains(a.Bytes(), []byte("TRAILER!!!\x00")) {
		t.Fatal("not a newc archive")
	}
}

func TestCHS(t *testing.T) {
	tests := map[string]struct {
		lba  uint32
		want [3]byte
	}{
		"first sector":  {0, [3]byte{0, 1, 0}},
		"partition 1":   {2048, [3]byte{32, 33, 0}},
		"cylinder 1":    {255 * 63, [3]byte{0, 1, 1}},
		"beyond 1024 c": {1024 * 255 * 63, [3]byte{254, 0xff, 0xff}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var b [3]byte
			chs(b[:], tc.lba)
			if b != tc.want {
				t.Fatalf("chs(%d) = %v, want %v", tc.lba, b, tc.want)
			}
		})
	}
}
