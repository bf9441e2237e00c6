// Package image builds the lab's golden test image from Debian packages,
// without loop devices or mounts: a raw disk with SYSLINUX's MBR, a FAT16
// partition (mkfs.fat on a plain file, files copied in with mtools,
// `syslinux --install` on the file) holding the Debian kernel and a busybox
// initramfs, and a 1 MiB raw partition for the state record.
//
// The same disk boots under BIOS and under UEFI: partition 1 is also its
// EFI system partition (MBR type 0xef), holding systemd-boot (Debian's
// systemd-boot-efi) as the removable-media loader \EFI\BOOT\BOOTX64.EFI,
// whose one entry boots the same kernel (through its EFI stub) with the same
// initramfs and command line as syslinux.cfg. BIOS firmware runs the MBR
// code, which boots the active partition's SYSLINUX; UEFI firmware (and
// iPXE's sanboot under UEFI) runs BOOTX64.EFI from the FAT file system.
//
// The initramfs /init (init.sh) logs into its own iSCSI disk from the iBFT
// that iPXE's sanboot publishes, or uses a local disk when there is no
// iBFT; it prints the state record it finds (BMI-LAB-STATE), writes
// "<hostname> <boot count>", prints BMI-LAB-BOOTED <hostname> on ttyS0 and
// powers off. Netbooted with bmi.install=<url> it is instead the installer
// of the install-to-disk path: it downloads <url> onto the local disk and
// powers off (Image.Kernel and Image.Initrd are what to netboot).
//
// The stay-up variant (Options.StayUp, the lab's image "golden-stayup")
// boots the same way but does not power off: its kernel command line has
// bmi.stayup=0, its initramfs holds open-iscsi's iscsid with iscsid.conf
// (the session recovery settings, each explained there) and the static
// bmi-lab-io (lab/iocheck), which keeps writing and verifying blocks in the
// scratch area after partition 2 and prints a BMI-LAB-IO line a second.
//
// The build is deterministic (fixed timestamps, volume id and disk
// signature; the initramfs is written by this package with zero mtimes)
// and cached by content: the image's name carries the hash of every input,
// so a second Build with the same inputs returns the cached file.
package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/bmi-go/bmi/lab/internal/proc"
	"github.com/bmi-go/bmi/service/fault"
)

//go:embed init.sh
var initScript []byte

//go:embed iscsid.conf
var iscsidConf []byte

// builderVersion changes whenever the layout or the build steps change, so
// that a new builder never returns an old cached image.
const builderVersion = "bmi-lab-image/4"

// Disk layout, in 512-byte sectors.
const (
	P1Start   = 2048                // FAT16, bootable, EFI system partition: SYSLINUX, systemd-boot, kernel, initramfs
	P1Sectors = 30 * 2048           // 30 MiB
	P2Start   = P1Start + P1Sectors // raw state record (type 0xda)
	P2Sectors = 2048                // 1 MiB
	// ScratchStart is the scratch area after partition 2, outside any
	// partition: the stay-up mode's verifying workload writes there.
	ScratchStart   = P2Start + P2Sectors
	ScratchSectors = 2048 // 1 MiB
	Sectors        = ScratchStart + ScratchSectors
)

// StateOffset is the byte offset of the state record (partition 2's first
// sector): "BMI1 <host> <count>\n" padded with NULs, all zero when fresh.
const StateOffset = P2Start * 512

// Modules the initramfs loads, with their dependencies, in this order.
var modules = []string{"iscsi_ibft", "iscsi_tcp", "sd_mod", "virtio_pci", "virtio_net", "virtio_blk", "e1000", "crc32c_generic"}

// KernelCmdline is the kernel command line in syslinux.cfg. no_timer_check:
// under heavy TCG load the kernel otherwise panics "IO-APIC + timer doesn't
// work!".
const KernelCmdline = "console=ttyS0,115200 quiet loglevel=3 panic=-1 no_timer_check bmi.host=auto"

// StayUpCmdline is the stay-up image's kernel command line: the node runs
// the verifying workload until it is powered off.
const StayUpCmdline = KernelCmdline + " bmi.stayup=0"

func syslinuxCfg(cmdline string) string {
	return "SERIAL 0 115200\nDEFAULT bmi\nPROMPT 0\nTIMEOUT 0\nLABEL bmi\n  KERNEL /vmlinuz\n  INITRD /initrd.gz\n  APPEND " + cmdline + "\n"
}

// SystemdBoot is the UEFI loader the image carries (Debian's
// systemd-boot-efi): a signed-by-nobody PE binary that needs no build step,
// reads a text entry, and boots the kernel through its EFI stub.
const SystemdBoot = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"

// loaderConf is systemd-boot's loader.conf: no menu (timeout 0), the one
// entry, and no editor (the command line is the image's, not the
// console's).
const loaderConf = "timeout 0\ndefault bmi.conf\neditor no\nconsole-mode keep\n"

// bootEntry is systemd-boot's entry: the files and command line of
// syslinux.cfg, so both firmware kinds boot the same thing.
func bootEntry(cmdline string) string {
	return "title BMI lab golden image\nlinux /vmlinuz\ninitrd /initrd.gz\noptions " + cmdline + "\n"
}

// Options says where to cache and what to build from. Zero fields get
// defaults: CacheDir /var/cache/bmi-lab/images, the newest kernel in /boot.
type Options struct {
	CacheDir      string
	KernelVersion string
	Log           *slog.Logger
	// StayUp builds the stay-up variant; IOCheck is then the static
	// bmi-lab-io binary to put into its initramfs.
	StayUp  bool
	IOCheck string
}

// Image is a built (or cached) golden image.
type Image struct {
	// Path of the raw disk image in the cache directory.
	Path string
	// Kernel is the kernel the image boots (a file in /boot) and Initrd
	// its initramfs, kept next to Path: together they netboot the same
	// /init, e.g. as the installer of the install-to-disk path
	// (bmi.install= on the kernel command line, see init.sh).
	Kernel, Initrd string
	// Key is the hash of every input (the first 16 hex digits name the file).
	Key string
	// Cached is true when Build found the image and built nothing.
	Cached bool
	// Took is how long Build took.
	Took time.Duration
}

// Tools are the programs Build runs, with the Debian packages that ship them.
var Tools = map[string]string{
	"mkfs.fat": "dosfstools", "mcopy": "mtools", "mmd": "mtools", "syslinux": "syslinux", "busybox": "busybox-static",
	"iscsistart": "open-iscsi", "iscsid": "open-iscsi", "modprobe": "kmod", "depmod": "kmod", "ldd": "libc-bin", "gzip": "gzip",
}

// Build returns the golden image for opts, building it if the cache does
// not hold one for the current inputs.
func Build(ctx context.Context, opts Options) (Image, error) {
	start := time.Now()
	if opts.CacheDir == "" {
		opts.CacheDir = "/var/cache/bmi-lab/images"
	}
	if opts.Log == nil {
		return Image{}, fmt.Errorf("image build: no logger: %w", fault.ErrInvalid)
	}
	kver, err := kernelVersion(opts.KernelVersion)
	if err != nil {
		return Image{}, err
	}
	kernel := "/boot/vmlinuz-" + kver
	work, err := os.MkdirTemp("", "bmi-image-")
	if err != nil {
		return Image{}, err
	}
	defer os.RemoveAll(work)

	if opts.StayUp && opts.IOCheck == "" {
		return Image{}, fmt.Errorf("image build: the stay-up image needs the static bmi-lab-io (make build): %w", fault.ErrInvalid)
	}
	files, err := initramfsFiles(ctx, kver, work, opts.StayUp, opts.IOCheck)
	if err != nil {
		return Image{}, err
	}
	var cpio bytes.Buffer
	if err := writeCpio(&cpio, files); err != nil {
		return Image{}, err
	}
	cmdline, base := KernelCmdline, "golden-"
	if opts.StayUp {
		cmdline, base = StayUpCmdline, "golden-stayup-"
	}
	if _, err := os.Stat(SystemdBoot); err != nil {
		return Image{}, fmt.Errorf("image build needs %s: install the Debian package systemd-boot-efi (make deps): %w", SystemdBoot, fault.ErrNotFound)
	}
	key, err := inputKey(cpio.Bytes(), kernel, syslinuxCfg(cmdline)+loaderConf+bootEntry(cmdline))
	if err != nil {
		return Image{}, err
	}
	out := filepath.Join(opts.CacheDir, base+key[:16]+".img")
	keep := strings.TrimSuffix(out, ".img") + ".initrd.gz"
	if _, err := os.Stat(out); err == nil {
		if _, err := os.Stat(keep); err == nil {
			return Image{Path: out, Kernel: kernel, Initrd: keep, Key: key, Cached: true, Took: time.Since(start)}, nil
		}
	}
	if err := os.MkdirAll(opts.CacheDir, 0o755); err != nil {
		return Image{}, fmt.Errorf("image cache %s: %w", opts.CacheDir, err)
	}

	// gzip -9 -n (no name, no timestamp): deterministic, and several
	// times faster than compress/gzip at its best level.
	gzCmd := exec.CommandContext(ctx, "gzip", "-9", "-n", "-c")
	gzCmd.Stdin = bytes.NewReader(cpio.Bytes())
	var gz, gzErr bytes.Buffer
	gzCmd.Stdout, gzCmd.Stderr = &gz, &gzErr
	if err := gzCmd.Run(); err != nil {
		return Image{}, fmt.Errorf("image build: gzip: %w: %s", err, gzErr.String())
	}
	initrd := filepath.Join(work, "initrd.gz")
	cfg := filepath.Join(work, "syslinux.cfg")
	if err := os.WriteFile(initrd, gz.Bytes(), 0o644); err != nil {
		return Image{}, err
	}
	if err := os.WriteFile(cfg, []byte(syslinuxCfg(cmdline)), 0o644); err != nil {
		return Image{}, err
	}
	lcfg, entry := filepath.Join(work, "loader.conf"), filepath.Join(work, "bmi.conf")
	if err := os.WriteFile(lcfg, []byte(loaderConf), 0o644); err != nil {
		return Image{}, err
	}
	if err := os.WriteFile(entry, []byte(bootEntry(cmdline)), 0o644); err != nil {
		return Image{}, err
	}
	part := filepath.Join(work, "part1.img")
	if err := buildFAT(ctx, part, map[string]string{"vmlinuz": kernel, "initrd.gz": initrd, "syslinux.cfg": cfg,
		"EFI/BOOT/BOOTX64.EFI": SystemdBoot, "loader/loader.conf": lcfg, "loader/entries/bmi.conf": entry}); err != nil {
		return Image{}, err
	}
	if err := os.WriteFile(keep+".tmp", gz.Bytes(), 0o644); err != nil {
		return Image{}, fmt.Errorf("image cache: %w", err)
	}
	if err := os.Rename(keep+".tmp", keep); err != nil {
		return Image{}, fmt.Errorf("image cache: %w", err)
	}
	tmp := out + ".tmp"
	if err := writeDisk(tmp, part); err != nil {
		os.Remove(tmp)
		return Image{}, err
	}
	if err := os.Rename(tmp, out); err != nil {
		return Image{}, err
	}
	took := time.Since(start)
	opts.Log.Info("golden image built", "path", out, "kernel", kver, "initrd_bytes", gz.Len(), "took", took.Round(time.Millisecond))
	return Image{Path: out, Kernel: kernel, Initrd: keep, Key: key, Took: took}, nil
}

// kernelVersion returns v, or the newest /boot/vmlinuz-* version.
func kernelVersion(v string) (string, error) {
	if v != "" {
		if _, err := os.Stat("/boot/vmlinuz-" + v); err != nil {
			return "", fmt.Errorf("kernel %s: %w (install linux-image-amd64)", v, fault.ErrNotFound)
		}
		return v, nil
	}
	ks, _ := filepath.Glob("/boot/vmlinuz-*")
	if len(ks) == 0 {
		return "", fmt.Errorf("no kernel in /boot: install the Debian package linux-image-amd64: %w", fault.ErrNotFound)
	}
	sort.Strings(ks)
	return strings.TrimPrefix(ks[len(ks)-1], "/boot/vmlinuz-"), nil
}

// inputKey hashes everything the image is made of.
func inputKey(cpio []byte, kernel, syslinuxCfg string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", builderVersion, syslinuxCfg)
	h.Write(cpio)
	for _, p := range []string{kernel, "/usr/lib/syslinux/mbr/mbr.bin", SystemdBoot, which("syslinux"), which("mkfs.fat"), which("mcopy")} {
		f, err := os.Open(p)
		if err != nil {
			return "", fmt.Errorf("image input %s: %w", p, err)
		}
		fmt.Fprintf(h, "\n%s\n", p)
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func which(name string) string {
	for _, d := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		if _, err := os.Stat(filepath.Join(d, name)); err == nil {
			return filepath.Join(d, name)
		}
	}
	return name
}

// buildFAT makes the FAT16 partition as a plain file and installs SYSLINUX
// on it with the mtools-based installer (no mount, no loop device). files
// maps paths in the file system (directories made with mmd) to host files.
func buildFAT(ctx context.Context, part string, files map[string]string) error {
	// Fixed volume id; no volume label (its directory entry would carry
	// the current time); SOURCE_DATE_EPOCH fixes mtools' timestamps.
	env := []string{"MTOOLS_SKIP_CHECK=1", "SOURCE_DATE_EPOCH=0"}
	if _, err := proc.RunEnv(ctx, env, "mkfs.fat", "-C", "-F", "16", "-h", fmt.Sprint(P1Start), "-i", "b1ab0001",
		part, fmt.Sprint(P1Sectors/2)); err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	made := map[string]bool{}
	for _, n := range names {
		var dir string
		for _, d := range strings.Split(filepath.Dir(n), "/") {
			if d == "." {
				break
			}
			dir += "/" + d
			if made[dir] {
				continue
			}
			made[dir] = true
			if _, err := proc.RunEnv(ctx, env, "mmd", "-i", part, "::"+dir); err != nil {
				return fmt.Errorf("image build: %w", err)
			}
		}
		if _, err := proc.RunEnv(ctx, env, "mcopy", "-i", part, files[n], "::/"+n); err != nil {
			return fmt.Errorf("image build: %w", err)
		}
	}
	if _, err := proc.RunEnv(ctx, env, "syslinux", "--install", part); err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	return nil
}

// writeDisk writes the whole disk: SYSLINUX's MBR code, a fixed disk
// signature, the partition table, partition 1 from part; the rest sparse.
func writeDisk(out, part string) error {
	code, err := os.ReadFile("/usr/lib/syslinux/mbr/mbr.bin")
	if err != nil {
		return fmt.Errorf("image build: %w (install syslinux-common)", err)
	}
	if len(code) > 440 {
		code = code[:440]
	}
	mbr := make([]byte, 512)
	copy(mbr, code)
	binary.LittleEndian.PutUint32(mbr[440:], 0xb1ab0001)
	// 0xef: the EFI system partition; BIOS's MBR code only looks at the
	// active flag.
	putPart(mbr[446:], true, 0xef, P1Start, P1Sectors)
	putPart(mbr[462:], false, 0xda, P2Start, P2Sectors)
	mbr[510], mbr[511] = 0x55, 0xaa

	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(Sectors * 512); err != nil {
		return err
	}
	if _, err := f.WriteAt(mbr, 0); err != nil {
		return err
	}
	p, err := os.Open(part)
	if err != nil {
		return err
	}
	defer p.Close()
	if _, err := f.Seek(P1Start*512, io.SeekStart); err != nil {
		return err
	}
	n, err := io.Copy(f, p)
	if err != nil {
		return err
	}
	if n > P1Sectors*512 {
		return fmt.Errorf("image build: partition 1 is %d bytes, more than %d: %w", n, P1Sectors*512, fault.ErrInternal)
	}
	return f.Close()
}

// putPart writes one MBR partition entry (CHS for 255 heads, 63 sectors).
func putPart(e []byte, boot bool, typ byte, start, size uint32) {
	if boot {
		e[0] = 0x80
	}
	chs(e[1:4], start)
	e[4] = typ
	chs(e[5:8], start+size-1)
	binary.LittleEndian.PutUint32(e[8:], start)
	binary.LittleEndian.PutUint32(e[12:], size)
}

func chs(b []byte, lba uint32) {
	c, h, s := lba/(255*63), (lba/63)%255, lba%63+1
	if c > 1023 {
		c, h, s = 1023, 254, 63
	}
	b[0], b[1], b[2] = byte(h), byte(s)|byte((c>>2)&0xc0), byte(c)
}

// errNoTool names a missing program and its package.
func errNoTool(name string) error {
	return fmt.Errorf("image build needs %s: install the Debian package %s: %w", name, Tools[name], fault.ErrNotFound)
}
