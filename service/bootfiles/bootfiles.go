// Package bootfiles is legacy file mode, for sites that keep their own
// dnsmasq and TFTP server: it writes pxelinux.cfg/01-<mac> and
// <node>.ipxe exactly as the original BMI did (its templates ims/mac.temp
// and ims/ipxe.temp), each atomically (temporary file, then rename), and
// removes both when the node is deprovisioned, which the original did not.
//
// The one change from the original: the iPXE interface is a setting. The
// original hard-coded "net2"; empty (the default) lets iPXE configure the
// first interface that answers DHCP.
package bootfiles

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/bmi-go/bmi/service/fault"
)

// Writer writes and removes the boot files of nodes.
type Writer struct {
	// PXELinuxDir is the pxelinux.cfg directory that receives 01-<mac>.
	PXELinuxDir string
	// IPXEDir receives <node>.ipxe.
	IPXEDir string
	// Interface is the iPXE interface the script configures ("net2" in the
	// original); empty configures the first that answers.
	Interface string
	// Log receives a line per file written or removed.
	Log *slog.Logger
}

// Entry is what a node's boot files say.
type Entry struct {
	// Node names the <node>.ipxe file.
	Node string
	// MAC names the pxelinux file.
	MAC net.HardwareAddr
	// Image is the menu label: the image (or disk) name.
	Image string
	// Portal is the iSCSI portal's address.
	Portal string
	// Target is the iSCSI target name.
	Target string
}

var (
	fileNameRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._@+-]{0,127}$`)
	labelRe    = regexp.MustCompile(`^[A-Za-z0-9._@+-]{1,128}$`)
	hostRe     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$`)
	targetRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.:_-]{0,222}$`)
	ifaceRe    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,15}$`)
)

// PXELinuxName is the pxelinux.cfg file name of a MAC: "01-" and the MAC
// in lower case, dash-separated.
func PXELinuxName(mac net.HardwareAddr) string {
	return "01-" + strings.ToLower(strings.ReplaceAll(mac.String(), ":", "-"))
}

// IPXEName is the iPXE script file name of a node.
func IPXEName(node string) string { return node + ".ipxe" }

func (e Entry) check() error {
	switch {
	case len(e.MAC) != 6:
		return fault.Errorf(fault.Invalid, "boot files of node %q: MAC %q is not a 6-byte MAC", e.Node, e.MAC)
	case !fileNameRe.MatchString(e.Node):
		return fault.Errorf(fault.Invalid, "boot files: node name %q cannot be a file name (letters, digits, ._@+-)", e.Node)
	case !labelRe.MatchString(e.Image):
		return fault.Errorf(fault.Invalid, "boot files of node %q: image name %q cannot be a pxelinux label (letters, digits, ._@+-)", e.Node, e.Image)
	case !hostRe.MatchString(e.Portal):
		return fault.Errorf(fault.Invalid, "boot files of node %q: portal %q is not an address or host name", e.Node, e.Portal)
	case !targetRe.MatchString(e.Target):
		return fault.Errorf(fault.Invalid, "boot files of node %q: target %q is not an iSCSI target name", e.Node, e.Target)
	}
	return nil
}

// IPXEScript is the original's <node>.ipxe for e.
func (w *Writer) IPXEScript(e Entry) string {
	ifconf := "ifconf --configurator=dhcp"
	if w.Interface != "" {
		ifconf += " " + w.Interface
	}
	return "#!ipxe\n" +
		"      set keep-san 1\n" +
		"      " + ifconf + "\n" +
		"      sanboot --keep iscsi:" + e.Portal + ":tcp:3260:1:" + e.Target + "\n" +
		"      boot\n"
}

// PXELinuxConfig is the original's pxelinux.cfg/01-<mac> for e.
func PXELinuxConfig(e Entry) string {
	return "DEFAULT menu\n" +
		"  PROMPT 0\n" +
		"  MENU TITLE PXE Menu\n" +
		"  TIMEOUT 30\n" +
		"  ONTIMEOUT " + e.Image + "\n" +
		"\n" +
		"LABEL " + e.Image + "\n" +
		"     MENU LABEL " + e.Image + "\n" +
		"     KERNEL ipxe.lkrn\n" +
		"     INITRD " + IPXEName(e.Node) + "\n"
}

// Write writes both files of e, replacing earlier ones. Bad input gives an
// error of kind fault.Invalid and changes nothing.
func (w *Writer) Write(_ context.Context, e Entry) error {
	if err := e.check(); err != nil {
		return err
	}
	if w.Interface != "" && !ifaceRe.MatchString(w.Interface) {
		return fault.Errorf(fault.Invalid, "boot files: iPXE interface %q is not an interface name", w.Interface)
	}
	ipxePath := filepath.Join(w.IPXEDir, IPXEName(e.Node))
	pxePath := filepath.Join(w.PXELinuxDir, PXELinuxName(e.MAC))
	ipxeTmp, err := writeTemp(ipxePath, w.IPXEScript(e), 0o755) // the original's modes
	if err != nil {
		return err
	}
	pxeTmp, err := writeTemp(pxePath, PXELinuxConfig(e), 0o644)
	if err != nil {
		os.Remove(ipxeTmp)
		return err
	}
	if err := os.Rename(ipxeTmp, ipxePath); err != nil {
		os.Remove(ipxeTmp)
		os.Remove(pxeTmp)
		return fmt.Errorf("boot files of node %q: %w", e.Node, err)
	}
	if err := os.Rename(pxeTmp, pxePath); err != nil {
		os.Remove(pxeTmp)
		return fmt.Errorf("boot files of node %q: %w", e.Node, err)
	}
	w.log().Info("boot files written", "node", e.Node, "ipxe", ipxePath, "pxelinux", pxePath)
	return nil
}

// Remove deletes the files of node and mac; files already gone are fine.
func (w *Writer) Remove(_ context.Context, node string, mac net.HardwareAddr) error {
	if !fileNameRe.MatchString(node) || len(mac) != 6 {
		return fault.Errorf(fault.Invalid, "boot files: node %q with MAC %q", node, mac)
	}
	var errs []error
	for _, p := range []string{filepath.Join(w.IPXEDir, IPXEName(node)), filepath.Join(w.PXELinuxDir, PXELinuxName(mac))} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove boot file of node %q: %w", node, err))
		}
	}
	if len(errs) == 0 {
		w.log().Info("boot files removed", "node", node, "mac", mac.String())
	}
	return errors.Join(errs...)
}

func (w *Writer) log() *slog.Logger {
	if w.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.Log
}

// writeTemp writes text to a new temporary file next to final and
// returns its name.
func writeTemp(final, text string, mode os.FileMode) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(final), "."+filepath.Base(final)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", final, err)
	}
	name := f.Name()
	_, err = f.WriteString(text)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", fmt.Errorf("write %s: %w", final, err)
	}
	return name, nil
}
