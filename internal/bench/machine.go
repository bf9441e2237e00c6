package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Machine is what the figures were measured on.
type Machine struct {
	Cores    int               `json:"cores"`
	CPU      string            `json:"cpu"`
	MemGiB   float64           `json:"mem_gib"`
	Virt     string            `json:"virt"` // "KVM" or "TCG (no /dev/kvm)"
	Kernel   string            `json:"kernel"`
	Versions map[string]string `json:"versions"`
}

// Probe describes this machine; versions of the tools named (command and
// its version flag) that are installed, plus Go's and the git commit.
func Probe() Machine {
	m := Machine{Cores: runtime.NumCPU(), Versions: map[string]string{"go": runtime.Version()}}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
				kib, _ := strconv.ParseFloat(f[1], 64)
				m.MemGiB = kib / (1 << 20)
			}
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	m.Virt = "TCG (no usable KVM)"
	if kvmUsable() {
		m.Virt = "KVM available (the lab's VMs still run TCG: domain type qemu)"
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	for name, args := range map[string][]string{
		"ceph": {"ceph", "--version"}, "qemu": {"qemu-system-x86_64", "--version"},
		"git commit": {"git", "describe", "--always", "--dirty"},
	} {
		if v := firstLine(args...); v != "" {
			m.Versions[name] = v
		}
	}
	return m
}

// kvmUsable reports whether /dev/kvm can create a VM (KVM_CREATE_VM):
// the device may exist on a host without hardware virtualization.
func kvmUsable() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	const kvmCreateVM = 0xAE01
	fd, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), kvmCreateVM, 0)
	if errno != 0 {
		return false
	}
	_ = syscall.Close(int(fd))
	return true
}

func firstLine(args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).Output()
	if err != nil {
		return ""
	}
	l, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return l
}

// Markdown renders the machine as a short list.
func (m Machine) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %d cores (%s), %.1f GiB memory, %s, kernel %s.\n\n", m.Cores, m.CPU, m.MemGiB, m.Virt, m.Kernel)
	b.WriteString("Versions:")
	for _, k := range sortedKeys(m.Versions) {
		fmt.Fprintf(&b, " %s `%s`;", k, m.Versions[k])
	}
	b.WriteString("\n")
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Load is the 1-minute load average over a section: at its start, at its
// end, and the highest sample (every 5 s) in between.
type Load struct {
	Start float64 `json:"start"`
	End   float64 `json:"end"`
	Max   float64 `json:"max"`
}

func (l Load) String() string {
	return fmt.Sprintf("%.2f at the start, %.2f at the end, %.2f at most (1-min)", l.Start, l.End, l.Max)
}

// LoadAvg is the current 1-minute load average (0 when unreadable).
func LoadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// WatchLoad samples the load average every 5 s until the returned stop
// function is called; stop returns the Load.
func WatchLoad() (stop func() Load) {
	l := Load{Start: LoadAvg()}
	l.Max = l.Start
	var mu sync.Mutex
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				v := LoadAvg()
				mu.Lock()
				l.Max = max(l.Max, v)
				mu.Unlock()
			}
		}
	}()
	return func() Load {
		close(done)
		wg.Wait()
		l.End = LoadAvg()
		l.Max = max(l.Max, l.End)
		return l
	}
}
