//go:build ceph_preview

package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/netnstest"
	"github.com/bmi-go/bmi/lab"
	"github.com/bmi-go/bmi/lab/image"
	"github.com/bmi-go/bmi/lab/vm"
	"github.com/bmi-go/bmi/service/dhcpd"
	"github.com/bmi-go/bmi/service/fault"
)

// installPort is the install server's HTTP port on the lab's provisioning
// bridge.
const installPort = 8070

// installServer is the install server of the classic install-to-disk
// path, run by the benchmark inside the lab's namespace on the
// provisioning bridge, as a site's PXE install server (Cobbler, MAAS,
// Ironic's dnsmasq) would be: a DHCP server (service/dhcpd, the code bmid
// runs, from addresses outside bmid's pool) that answers only the machines
// being installed (bmid's own DHCP ignores machines without a boot
// config) and points their iPXE at this server's HTTP, which serves each
// an iPXE script that netboots the golden image's kernel and initramfs as
// the installer (bmi.install=<URL>, lab/image init.sh), and the image
// itself: it streams it from bmid's image download endpoint, which the
// installer cannot reach (bmid's API does not listen on the provisioning
// network), as a site's install server serves its images.
type installServer struct {
	base  string
	img   image.Image
	size  int64  // the golden image's bytes
	addr  string // the bridge address (this server)
	api   string // bmid's API for the lab project, as the host reaches it
	user  string // the lab user the image is downloaded as
	pw    string
	mu    sync.Mutex
	armed map[string]armed // by MAC
	stop  func()
}

// armed is a machine being installed and the image it gets.
type armed struct{ node, image string }

// startInstallServer starts the install server of bl's lab for img.
func startInstallServer(bl *benchLab, img image.Image, log *slog.Logger) (*installServer, error) {
	st, err := os.Stat(img.Path)
	if err != nil {
		return nil, fmt.Errorf("install server: %w", err)
	}
	addr := strings.Split(bl.l.Bridge4, "/")[0]
	ip := net.ParseIP(addr).To4()
	if ip == nil {
		return nil, fmt.Errorf("install server: bridge address %q: %w", bl.l.Bridge4, fault.ErrInvalid)
	}
	is := &installServer{
		base: fmt.Sprintf("http://%s:%d", addr, installPort), img: img, size: st.Size(), armed: map[string]armed{},
		addr: addr, api: bl.api, user: bl.user, pw: bl.pw,
	}
	ns := netnstest.NS{Name: bl.l.Namespace}
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", fmt.Sprintf("%s:%d", addr, installPort))
		return err
	}); err != nil {
		return nil, fmt.Errorf("install server: http listener in %s: %w", bl.l.Namespace, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /boot/{file}", is.script)
	mux.HandleFunc("GET /install/vmlinuz", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, img.Kernel) })
	mux.HandleFunc("GET /install/initrd.gz", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, img.Initrd) })
	mux.HandleFunc("GET /install/image/{name}", is.image)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()

	first, last := append(net.IP(nil), ip...), append(net.IP(nil), ip...)
	first[3], last[3] = 200, 219 // bmid's pool is .100-.199
	ctx, cancel := context.WithCancel(context.Background())
	d := &dhcpd.Server{
		Interfaces: []string{bl.l.Bridge}, ServerIP: ip, BaseURL: is.base, Nodes: is, Leases: dhcpd.NewMemoryLeases(), Log: log,
		// as dnsmasq's --enable-ra in section 9: the lab's iPXE ROM waits
		// about 13 s for IPv6 router discovery otherwise, which a real
		// machine's PXE ROM does not
		RouterAdvertisements: true,
		Pool:                 dhcpd.Pool{Start: first, End: last, Netmask: net.CIDRMask(24, 32), LeaseTime: 10 * time.Minute},
	}
	errc := ns.Go(func() error { return d.Serve(ctx) })
	is.stop = func() {
		cancel()
		<-errc
		_ = hs.Close()
	}
	select {
	case err := <-errc: // Serve returns at once only when it could not start
		cancel()
		_ = hs.Close()
		if err == nil {
			err = errors.New("stopped")
		}
		return nil, fmt.Errorf("install server: dhcp on %s: %w", bl.l.Bridge, err)
	case <-time.After(500 * time.Millisecond):
	}
	return is, nil
}

// BootNode is dhcpd.Nodes: only armed machines get an answer.
func (is *installServer) BootNode(_ context.Context, mac net.HardwareAddr) (string, error) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if a, ok := is.armed[mac.String()]; ok {
		return a.node, nil
	}
	return "", fmt.Errorf("install server: %s is not being installed: %w", mac, fault.ErrNotFound)
}

// arm makes the server install image (a BMI image of the lab project) on
// the machine with mac.
func (is *installServer) arm(mac, node, image string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.armed[mac] = armed{node, image}
}

func (is *installServer) disarm(mac string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	delete(is.armed, mac)
}

// script serves /boot/<mac with dashes>.ipxe to an armed machine.
func (is *installServer) script(w http.ResponseWriter, r *http.Request) {
	mac := strings.ReplaceAll(strings.TrimSuffix(r.PathValue("file"), ".ipxe"), "-", ":")
	is.mu.Lock()
	a, ok := is.armed[mac]
	is.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	url := fmt.Sprintf("%s/install/image/%s", is.base, a.image)
	fmt.Fprintf(w, `#!ipxe
echo BMI-BENCH-INSTALLER %[1]s: netbooting the installer
kernel %[2]s/install/vmlinuz %[3]s bmi.host=%[1]s bmi.install=%[4]s bmi.ip=${net0/ip} bmi.mask=${net0/netmask} bmi.mac=${net0/mac} bmi.disk=/dev/vda || goto failed
initrd %[2]s/install/initrd.gz || goto failed
boot || goto failed
:failed
echo BMI-LAB-FAILED installer netboot of %[1]s failed
`, a.node, is.base, image.KernelCmdline, url)
}

// image streams /install/image/{name} from bmid's download endpoint as
// the lab user.
func (is *installServer) image(w http.ResponseWriter, r *http.Request) {
	req, err := http.NewRequestWithContext(r.Context(), "GET", is.api+"/images/"+r.PathValue("name")+"/data", nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req.SetBasicAuth(is.user, is.pw)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer res.Body.Close()
	if cl := res.Header.Get("Content-Length"); cl != "" {
		w.Header().Set("Content-Length", cl)
	}
	w.WriteHeader(res.StatusCode)
	_, _ = io.Copy(w, res.Body)
}

// installMilestones are the install phase of the install-to-disk path,
// from the power cycle to the installer's report.
var installMilestones = []vm.Milestone{
	{Name: "firmware", RE: regexp.MustCompile(`SeaBIOS|iPXE \d`)},
	{Name: "dhcp", RE: regexp.MustCompile(`net0: \d+\.\d+\.\d+\.\d+/`)},
	{Name: "install-script", RE: regexp.MustCompile(`BMI-BENCH-INSTALLER`)},
	{Name: "installer-init", RE: regexp.MustCompile(`BMI-LAB-T \S+ install-start`)},
	{Name: "installer-net", RE: regexp.MustCompile(`BMI-LAB-T \S+ install-net`)},
	{Name: "installed", RE: installedRE},
}

var installedRE = regexp.MustCompile(`BMI-LAB-INSTALLED disk=\S+ bytes=(\S+) seconds=([0-9.]+)`)

// installResult is one run of the install-to-disk path; durations are
// from the first power on (the power cycle) unless said otherwise.
type installResult struct {
	installed time.Duration // the installer reported the image written
	off       time.Duration // the conductor saw the machine off
	on        time.Duration // the conductor powered it on from its disk
	total     time.Duration // the installed system's marker
	write     float64       // the installer's own download + write time (s)
	install   vm.Timeline   // install phase, from the power cycle
	local     vm.Timeline   // local boot, from the conductor's power on
	localBoot time.Duration // power on to marker of the local boot
	localCPU  time.Duration // QEMU CPU time of the local boot
	mode      string
}

// installToDisk runs the classic path on node with the lab project's
// image img of size bytes: a blank local disk of that size; power cycle through hil-mock (boot device PXE); the
// install server's DHCP and iPXE script netboot the installer, which
// downloads the image from bmid's API onto the disk and powers off; then,
// as a provisioning conductor does, set the boot device to the disk and
// power on through hil-mock; the installed system boots to its marker.
// The machine is restored to its diskless definition afterwards.
func (bl *benchLab) installToDisk(ctx context.Context, m *vm.Machines, is *installServer, node lab.Node, img string, size int64, i int) (installResult, error) {
	var r installResult
	_ = m.Off(ctx, node.Domain)
	disk := filepath.Join(bl.dir, fmt.Sprintf("install-%s-%d.qcow2", node.Name, i))
	if err := vm.NewDisk(ctx, disk, size); err != nil {
		return r, err
	}
	spec := vm.Spec{Name: node.Domain, Host: node.Name, MAC: node.MAC, Tap: node.Tap, Serial: node.Serial}
	withDisk := spec
	withDisk.Disk = disk
	if err := m.Define(ctx, withDisk, vm.BootPXE); err != nil {
		return r, err
	}
	defer func() {
		_ = m.Off(ctx, node.Domain)
		_ = m.Define(ctx, spec, vm.BootNone)
		os.Remove(disk)
	}()
	// the install server serves the provisioning network (bmid's
	// deprovision took the NIC off it)
	if err := bl.connect(node.Name); err != nil {
		return r, err
	}
	defer func() { _ = bl.detach(node.Name) }()
	is.arm(node.MAC, node.Name, img)
	defer is.disarm(node.MAC)
	con := vm.Console{Path: node.Serial}
	fail := func(what string, err error) (installResult, error) {
		tail, _ := con.Tail(2000)
		return r, fmt.Errorf("%s: install-to-disk: %s: %w; console tail:\n%s", node.Name, what, err, tail)
	}
	from := con.Offset()
	t0 := time.Now()
	if _, err := bl.call("POST", bl.hil+"/node/"+node.Name+"/power_cycle", "", 200); err != nil {
		return r, err
	}
	// the installer's copy grows with the image: allow 5 MiB/s on top
	tl, err := con.Timeline(ctx, from, t0, installMilestones, bootTimeout+time.Duration(size>>20)*200*time.Millisecond)
	r.install = tl
	if err != nil {
		return fail("installer", err)
	}
	r.installed = tl[len(tl)-1].At
	mk, err := con.WaitFor(ctx, from, installedRE, time.Second)
	if err != nil {
		return fail("installer report", err)
	}
	r.write, _ = strconv.ParseFloat(mk.Groups[2], 64)
	for end := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		st, err := bl.call("GET", bl.hil+"/node/"+node.Name+"/power_status", "", 200)
		if err != nil {
			return r, err
		}
		if st["power_status"] == "Off" {
			break
		}
		if time.Now().After(end) {
			return fail("power off", errors.New("the installer did not power off within 2 min"))
		}
	}
	r.off = time.Since(t0)
	if _, err := bl.call("PUT", bl.hil+"/node/"+node.Name+"/boot_device", `{"bootdev": "disk"}`, 200); err != nil {
		return r, err
	}
	from2 := con.Offset()
	stop := cpuWatch(node.Domain)
	t1 := time.Now()
	if _, err := bl.call("POST", bl.hil+"/node/"+node.Name+"/power_on", "", 200); err != nil {
		stop()
		return r, err
	}
	r.on = t1.Sub(t0)
	tl, err = con.Timeline(ctx, from2, t1, vm.BootMilestones, bootTimeout)
	r.localCPU = stop()
	r.local = tl
	if err != nil {
		return fail("boot from the installed disk", err)
	}
	r.localBoot = tl[len(tl)-1].At
	r.total = r.on + r.localBoot
	b, err := con.WaitFor(ctx, from2, vm.BootedRE, time.Second)
	if err != nil {
		return fail("marker", err)
	}
	r.mode = b.Groups[2]
	return r, nil
}

// largeMiB is the size of the larger image of section 2: the golden image
// followed by pseudo-random data (written, not sparse), to show how each
// path grows with the image: 4 GiB, the size of a real OS image.
const largeMiB = 4096

// uploadPadded uploads the golden image at path followed by pseudo-random
// bytes up to size as the lab project's image name, through bmid's API.
func (bl *benchLab) uploadPadded(ctx context.Context, path, name string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	fill := rand.NewChaCha8([32]byte{'b', 'm', 'i'})
	body := io.MultiReader(f, io.LimitReader(fill, size-st.Size()))
	req, err := http.NewRequestWithContext(ctx, "PUT", bl.api+"/images/"+name+"/data", body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.SetBasicAuth(bl.user, bl.pw)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("upload %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("upload %s: HTTP %d: %s", name, resp.StatusCode, msg)
	}
	return nil
}

// benchLarge runs (a) and (b) once more with a largeMiB image and adds
// the rows to s2.
func benchLarge(b *testing.B, bl *benchLab, m *vm.Machines, is *installServer, node lab.Node, s2 *Section) {
	ctx := context.Background()
	name := fmt.Sprintf("%s-%dm", lab.GoldenImage, largeMiB)
	size := int64(largeMiB) << 20
	t0 := time.Now()
	if err := bl.uploadPadded(ctx, is.img.Path, name, size); err != nil {
		fmt.Printf("%d MiB image: %v\n", largeMiB, err)
		s2.Note("the %d MiB image runs were not done: %v", largeMiB, err)
		return
	}
	up := time.Since(t0)
	c := fmt.Sprintf("%d MiB image: total to marker", largeMiB)
	ra := Row{Case: c, Subject: "(a) BMI", Unit: "s"}
	r, err := bl.netboot(ctx, node, name, bootTimeout)
	if err != nil {
		ra.Errors = 1
		s2.Note("(a) with the %d MiB image failed: %s", largeMiB, errLine(err))
	} else {
		ra = Durations(c, "(a) BMI", "s", []time.Duration{r.prepare + r.boot})
		fmt.Printf("netboot %d MiB: provision %.1f s, boot %.1f s (%s): %v\n", largeMiB, r.prepare.Seconds(), r.boot.Seconds(), r.mode, r.tl)
	}
	if err := bl.deprovision(node); err != nil {
		b.Fatal(err)
	}
	rb := Row{Case: c, Subject: "(b) install-to-disk", Unit: "s"}
	ir, err := bl.installToDisk(ctx, m, is, node, name, size, 99)
	if err != nil {
		rb.Errors = 1
		s2.Note("(b) with the %d MiB image failed: %s", largeMiB, errLine(err))
	} else {
		rb = Durations(c, "(b) install-to-disk", "s", []time.Duration{ir.total})
		fmt.Printf("install-to-disk %d MiB: installed %.1f s (download+write %.2f s in the guest), on %.1f s, marker %.1f s (%s)\n",
			largeMiB, ir.installed.Seconds(), ir.write, ir.on.Seconds(), ir.total.Seconds(), ir.mode)
		s2.Note("(b) with the %d MiB image: image written at %.1f s, installer download + write %.1f s (%.1f MiB/s), powered on from the disk at %.1f s, marker at %.1f s",
			largeMiB, ir.installed.Seconds(), ir.write, float64(largeMiB)/ir.write, ir.on.Seconds(), ir.total.Seconds())
	}
	s2.Add(ra)
	s2.Add(rb)
	if ra.Errors == 0 && rb.Errors == 0 {
		s2.Ratio(fmt.Sprintf("%d MiB image: (a) BMI / (b) install-to-disk, total to marker", largeMiB), ra.Median, rb.Median)
		s2.Ratio(fmt.Sprintf("%d MiB image: (b) install-to-disk / (a) BMI, total to marker", largeMiB), rb.Median, ra.Median)
	}
	s2.Note("the %d MiB image is the golden image followed by pseudo-random data (written, not sparse), uploaded through bmid's API in %.1f s; one run of each path (full run only)",
		largeMiB, up.Seconds())
}
