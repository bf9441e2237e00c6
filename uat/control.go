package uat

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// shellControl stops and starts a service with the shell commands of a
// site config (hil_control, ceph_control, boot_faults).
type shellControl struct {
	what, stop, start string
}

// run runs one of the commands, bounded by 5 minutes.
func (c shellControl) run(ctx context.Context, verb, cmd string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "sh", "-c", cmd).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s.%s (%s): %w: %s", c.what, verb, cmd, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// hilControl is a steps.HILSwitch of shell commands.
type hilControl struct{ c shellControl }

func (h hilControl) StopHIL(ctx context.Context) error  { return h.c.run(ctx, "stop", h.c.stop) }
func (h hilControl) StartHIL(ctx context.Context) error { return h.c.run(ctx, "start", h.c.start) }

// cephControl is a steps.CephSwitch of shell commands.
type cephControl struct{ c shellControl }

func (h cephControl) StopCeph(ctx context.Context) error  { return h.c.run(ctx, "stop", h.c.stop) }
func (h cephControl) StartCeph(ctx context.Context) error { return h.c.run(ctx, "start", h.c.start) }

// faultControl is a steps.BootFaultSwitch of shell commands (start turns
// the faults on, stop turns them off).
type faultControl struct{ c shellControl }

func (f faultControl) BootFaultsOn(ctx context.Context) error  { return f.c.run(ctx, "on", f.c.start) }
func (f faultControl) BootFaultsOff(ctx context.Context) error { return f.c.run(ctx, "off", f.c.stop) }
