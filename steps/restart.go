package steps

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/cucumber/godog"

	"github.com/bmi-go/bmi/lab/iocheck"
)

// stayUpRE is the stay-up test OS's line once iscsid took over the session
// (lab/image); its workload's lines are read by lab/iocheck.
var stayUpRE = regexp.MustCompile(`BMI-LAB-STAYUP iscsid=synced [^\r\n]*`)

// The restarts a site's bmid_restart commands perform.
const (
	RestartGraceful = "graceful"
	RestartKill     = "kill"
	RestartUpgrade  = "upgrade"
)

func registerRestart(sc *godog.ScenarioContext) {
	sc.Step(`^the site's stay-up image, called "([^"]*)"$`, stayUpImage)
	sc.Step(`^(node [AB]) boots and keeps verifying its disk$`, bootStayUp)
	sc.Step(`^(node [AB]) and (node [AB]) boot and keep verifying their disks$`, bootStayUpBoth)
	sc.Step(`^bmid is (restarted gracefully|killed and started again|upgraded and restarted)$`, restartBmid)
	sc.Step(`^(node [AB]) and (node [AB]) keep verifying their disks without errors$`, keepVerifying)
	sc.Step(`^I power off (node [AB])$`, powerOff)
}

func stayUpImage(ctx context.Context, alias string) error {
	w := From(ctx)
	if w.site.StayUpImage == "" {
		return fmt.Errorf("%w: site %s names no stay-up image (stayup_image)", godog.ErrSkip, w.site.Name)
	}
	w.names.Bind(alias, w.site.StayUpImage)
	_, err := w.op.Image(ctx, w.site.Project, w.site.StayUpImage)
	return err
}

func consolePath(w *World, alias string) (string, error) {
	n, err := w.node(alias)
	if err != nil {
		return "", err
	}
	return filepath.Join(w.site.Consoles, n.Name+".log"), nil
}

func consoleSize(path string) int64 {
	if st, err := os.Stat(path); err == nil {
		return st.Size()
	}
	return 0
}

// bootStayUp boots the node (bootToMarker) and waits until iscsid owns its
// session and its workload has verified blocks.
func bootStayUp(ctx context.Context, alias string) (context.Context, error) {
	b, err := stayUpBoot(ctx, alias)
	return attachConsole(ctx, alias, b), err
}

// bootStayUpBoth boots two stay-up nodes at once, each as bootStayUp does.
func bootStayUpBoth(ctx context.Context, a, b string) (context.Context, error) {
	ctx, _, err := bootTwo(ctx, a, b, stayUpBoot)
	return ctx, err
}

// bootTwo boots nodes a and b at once with boot and attaches both boots'
// consoles; it returns the boots and their errors joined.
func bootTwo(ctx context.Context, a, b string, boot func(context.Context, string) (labBoot, error)) (context.Context, []labBoot, error) {
	if a == b {
		return ctx, nil, fmt.Errorf("%s twice: name two nodes", a)
	}
	aliases := []string{a, b}
	boots := make([]labBoot, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, alias := range aliases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			boots[i], errs[i] = boot(ctx, alias)
		}()
	}
	wg.Wait()
	for i, alias := range aliases {
		ctx = attachConsole(ctx, alias, boots[i])
		if errs[i] != nil {
			boots[i] = labBoot{} // not a proven boot
		}
	}
	return ctx, boots, errors.Join(errs...)
}

// stayUpBoot boots the node (bootToMarker), waits until it runs in
// stay-up mode and its I/O progresses, and records its console offset.
func stayUpBoot(ctx context.Context, alias string) (labBoot, error) {
	w := From(ctx)
	path, err := consolePath(w, alias)
	if err != nil {
		return labBoot{}, err
	}
	from := consoleSize(path)
	b, err := bootToMarker(ctx, alias)
	if err != nil {
		return b, err
	}
	if _, err := waitConsole(ctx, path, from, stayUpRE, 2*time.Minute); err != nil {
		return b, fmt.Errorf("%s is not in stay-up mode (is %q the stay-up image?): %w", alias, w.site.StayUpImage, err)
	}
	_, err = ioProgress(ctx, path, consoleSize(path), 20, 2*time.Minute)
	w.mu.Lock()
	w.stayUp[alias] = consoleSize(path)
	w.mu.Unlock()
	return b, err
}

func restartBmid(ctx context.Context, how string) error {
	w := From(ctx)
	mode := map[string]string{"restarted gracefully": RestartGraceful, "killed and started again": RestartKill,
		"upgraded and restarted": RestartUpgrade}[how]
	cmd := w.site.BmidRestart[mode]
	if cmd == "" {
		return fmt.Errorf("%w: site %s has no bmid_restart.%s command", godog.ErrSkip, w.site.Name, mode)
	}
	for alias := range w.stayUp {
		p, err := consolePath(w, alias)
		if err != nil {
			return err
		}
		w.stayUp[alias] = consoleSize(p)
	}
	start := time.Now()
	out, err := exec.CommandContext(ctx, "sh", "-c", cmd).CombinedOutput()
	if err != nil {
		return fmt.Errorf("bmid_restart.%s (%s): %w: %s", mode, cmd, err, strings.TrimSpace(string(out)))
	}
	w.logf("bmid %s in %.1f s: %s", how, time.Since(start).Seconds(), strings.TrimSpace(string(out)))
	return nil
}

// keepVerifying waits until both nodes' workloads made progress since the
// last event, with no I/O error and no mismatch on their consoles.
func keepVerifying(ctx context.Context, a, b string) error {
	w := From(ctx)
	for _, alias := range []string{a, b} {
		from, ok := w.stayUp[alias]
		if !ok {
			return fmt.Errorf("%s was not booted in stay-up mode in this scenario", alias)
		}
		p, err := consolePath(w, alias)
		if err != nil {
			return err
		}
		stall, err := ioProgress(ctx, p, from, 30, 3*time.Minute)
		if err != nil {
			return fmt.Errorf("%s: %w", alias, err)
		}
		w.logf("%s: I/O verified since the last event, largest stall %d ms", alias, stall)
	}
	return nil
}

func powerOff(ctx context.Context, alias string) error {
	w := From(ctx)
	n, err := w.node(alias)
	if err != nil {
		return err
	}
	if err := w.hil.PowerOff(ctx, hilCred(w.site.Operator), n.Name); err != nil {
		return fmt.Errorf("hil: power off %s: %w", n.Name, err)
	}
	delete(w.stayUp, alias)
	return nil
}

// waitConsole polls the console from offset from until re matches.
func waitConsole(ctx context.Context, path string, from int64, re *regexp.Regexp, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(path)
		if int64(len(b)) >= from {
			if m := re.Find(b[from:]); m != nil {
				return string(m), nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no %q on the console within %v", re, timeout)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// ioProgress waits until the console shows, after from, at least writes
// more verified writes than the first report line there; any error or
// mismatch fails it at once. It returns the largest stall seen (ms).
func ioProgress(ctx context.Context, path string, from, writes int64, timeout time.Duration) (int64, error) {
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(path)
		if int64(len(b)) >= from {
			lines, errs := iocheck.ParseLines(b[from:])
			if len(errs) > 0 {
				return 0, fmt.Errorf("the node's disk check failed: %s", errs[0])
			}
			if len(lines) > 0 {
				last := lines[len(lines)-1]
				if last.Errors != 0 || last.Mismatches != 0 {
					return 0, fmt.Errorf("the node's disk check counts errors: %d errors, %d mismatches", last.Errors, last.Mismatches)
				}
				if last.Writes-lines[0].Writes >= writes {
					var stall int64
					for _, l := range lines {
						stall = max(stall, l.WindowStallMs)
					}
					return stall, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no I/O progress on the node's disk within %v", timeout)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// logf writes one line to the run's log (Config.Log), if there is one.
func (w *World) logf(format string, a ...any) {
	if w.cfg.Log != nil {
		fmt.Fprintf(w.cfg.Log, format+"\n", a...)
	}
}
