package image

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/bmi-go/bmi/lab/internal/proc"
)

// file is one initramfs entry: a directory, a regular file or a symlink.
type file struct {
	mode uint32 // type and permission bits (cpio mode)
	data []byte // file contents, or the symlink target
}

const (
	modeDir  = 0o040000
	modeFile = 0o100000
	modeLink = 0o120000
)

// initramfsFiles collects the initramfs: busybox with its applet links,
// iscsistart with its libraries, the kernel modules (and depmod's index)
// and /init; for the stay-up image also iscsid with its libraries and
// configuration and the static bmi-lab-io (ioCheck). work is a scratch
// directory.
func initramfsFiles(ctx context.Context, kver, work string, stayUp bool, ioCheck string) (map[string]file, error) {
	tools := []string{"busybox", "iscsistart", "modprobe", "depmod", "ldd"}
	if stayUp {
		tools = append(tools, "iscsid")
	}
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			return nil, errNoTool(t)
		}
	}
	fs := map[string]file{}
	add := func(path string, f file) {
		path = strings.TrimPrefix(filepath.Clean(path), "/")
		for d := filepath.Dir(path); d != "."; d = filepath.Dir(d) {
			if _, ok := fs[d]; !ok {
				fs[d] = file{mode: modeDir | 0o755}
			}
		}
		fs[path] = f
	}
	addHost := func(dst, src string, perm uint32) error {
		b, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("image build: %w", err)
		}
		add(dst, file{mode: modeFile | perm, data: b})
		return nil
	}
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp", "etc/iscsi", "var/lock", "sbin"} {
		add(d, file{mode: modeDir | 0o755})
	}

	busybox, _ := exec.LookPath("busybox") // busybox-static: no libraries needed
	if err := addHost("bin/busybox", busybox, 0o755); err != nil {
		return nil, err
	}
	list, err := proc.Run(ctx, busybox, "--list")
	if err != nil {
		return nil, fmt.Errorf("image build: %w", err)
	}
	for _, a := range strings.Fields(list) {
		if a != "busybox" {
			add("bin/"+a, file{mode: modeLink | 0o777, data: []byte("busybox")})
		}
	}

	// addProgram adds a dynamically linked program and its libraries.
	addProgram := func(name string) error {
		path, _ := exec.LookPath(name)
		if err := addHost("sbin/"+name, path, 0o755); err != nil {
			return err
		}
		ldd, err := proc.Run(ctx, "ldd", path)
		if err != nil {
			return fmt.Errorf("image build: %w", err)
		}
		for _, f := range strings.Fields(ldd) {
			if strings.HasPrefix(f, "/") {
				real, err := filepath.EvalSymlinks(f)
				if err != nil {
					return fmt.Errorf("image build: library %s: %w", f, err)
				}
				if err := addHost(f, real, 0o755); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := addProgram("iscsistart"); err != nil {
		return nil, err
	}
	if stayUp {
		if err := addProgram("iscsid"); err != nil {
			return nil, err
		}
		add("etc/iscsi/iscsid.conf", file{mode: modeFile | 0o600, data: iscsidConf})
		// iscsid checks that its IPC peer is root by name (getpwuid).
		add("etc/passwd", file{mode: modeFile | 0o644, data: []byte("root:x:0:0:root:/:/bin/sh\n")})
		add("etc/group", file{mode: modeFile | 0o644, data: []byte("root:x:0:\n")})
		if err := addHost("bin/bmi-lab-io", ioCheck, 0o755); err != nil {
			return nil, fmt.Errorf("%w (the stay-up image needs the static bmi-lab-io: make build)", err)
		}
	}
	add("etc/bmi-lab.env", file{mode: modeFile | 0o644, data: []byte(fmt.Sprintf("SCRATCH_OFF=%d\nSCRATCH_SIZE=%d\n",
		ScratchStart*512, ScratchSectors*512))})

	// Modules in load order (modprobe resolves the dependencies), staged
	// in a scratch tree so that depmod can index them for iscsistart's
	// libkmod.
	stage := filepath.Join(work, "modroot")
	mdir := filepath.Join("lib/modules", kver)
	var order []string
	seen := map[string]bool{}
	for _, m := range modules {
		out, err := proc.Run(ctx, "modprobe", "-S", kver, "--show-depends", m)
		if err != nil {
			return nil, fmt.Errorf("image build: module %s: %w", m, err)
		}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "insmod" {
				continue // builtin
			}
			rel := strings.TrimPrefix(f[1], "/lib/modules/"+kver+"/")
			if seen[rel] {
				continue
			}
			seen[rel] = true
			order = append(order, rel)
			b, err := os.ReadFile(f[1])
			if err != nil {
				return nil, fmt.Errorf("image build: %w", err)
			}
			dst := filepath.Join(stage, mdir, rel)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return nil, err
			}
			if err := os.WriteFile(dst, b, 0o644); err != nil {
				return nil, err
			}
		}
	}
	for _, n := range []string{"modules.builtin", "modules.builtin.modinfo", "modules.order"} {
		if b, err := os.ReadFile(filepath.Join("/lib/modules", kver, n)); err == nil {
			if err := os.WriteFile(filepath.Join(stage, mdir, n), b, 0o644); err != nil {
				return nil, err
			}
		}
	}
	if _, err := proc.Run(ctx, "depmod", "-b", stage, kver); err != nil {
		return nil, fmt.Errorf("image build: %w", err)
	}
	err = filepath.Walk(filepath.Join(stage, mdir), func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(stage, p)
		return addHost(rel, p, 0o644)
	})
	if err != nil {
		return nil, err
	}
	add("etc/modules.order", file{mode: modeFile | 0o644, data: []byte(strings.Join(order, "\n") + "\n")})
	add("init", file{mode: modeFile | 0o755, data: initScript})
	return fs, nil
}

// writeCpio writes fs as a newc cpio archive: sorted paths (parents first),
// inode numbers in that order, uid/gid 0 and mtime 0, so the same files
// always give the same bytes.
func writeCpio(w io.Writer, fs map[string]file) error {
	paths := make([]string, 0, len(fs))
	for p := range fs {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	entry := func(ino int, name string, f file) {
		nlink := 1
		if f.mode&0o170000 == modeDir {
			nlink = 2
		}
		fmt.Fprintf(&buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, f.mode, 0, 0, nlink, 0, len(f.data), 0, 0, 0, 0, len(name)+1, 0)
		buf.WriteString(name)
		buf.WriteByte(0)
		pad(&buf)
		buf.Write(f.data)
		pad(&buf)
	}
	for i, p := range paths {
		entry(i+1, p, fs[p])
	}
	entry(0, "TRAILER!!!", file{})
	_, err := w.Write(buf.Bytes())
	return err
}

func pad(b *bytes.Buffer) {
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
}
