package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bmi-go/bmi/lab"
	"github.com/bmi-go/bmi/service/cli"
	"github.com/bmi-go/bmi/service/clikit"
)

// upCmd is `bmi-lab up`.
func upCmd() *cobra.Command {
	var f labFlags
	var nodes, mem, uefi, uefiHTTP, gateways int
	var firmware map[string]string
	var bmid, cache, iocheck string
	c := &cobra.Command{
		Use:   "up",
		Short: "Build the lab site: network, libvirtd and PXE-first machines, Ceph, hil-mock and bmid in the lab namespace, the golden image imported through BMI (idempotent; resumes a half-built lab)",
		Args:  clikit.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if nodes < 1 || nodes > 64 {
				return clikit.Usagef("--nodes %d: want 1..64", nodes)
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			if bmid == "" {
				bmid = filepath.Join(filepath.Dir(self), "bmid")
				if _, err := os.Stat(bmid); err != nil {
					if p, err := exec.LookPath("bmid"); err == nil {
						bmid = p
					}
				}
			}
			if iocheck == "" {
				iocheck = filepath.Join(filepath.Dir(self), "bmi-lab-io")
			}
			start := time.Now()
			log := slog.New(slog.NewTextHandler(c.ErrOrStderr(), nil))
			l, err := lab.Up(c.Context(), lab.UpOptions{
				Options: lab.Options{Name: f.name, Dir: f.dir, Nodes: nodes, MemoryMiB: mem,
					UEFI: uefi, UEFIHTTP: uefiHTTP, Firmware: firmware, Gateways: gateways},
				Bmid: bmid, BmiLab: self, ImageCache: cache, IOCheck: iocheck,
			}, log)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.OutOrStdout(), "lab %s up in %.1f s: %d nodes, API %s (eval \"$(bmi-lab env --name %s)\")\n",
				l.Name, time.Since(start).Seconds(), len(l.Nodes), l.APIURL(), l.Name)
			return err
		},
	}
	f.add(c)
	c.Flags().IntVar(&nodes, "nodes", 2, "number of machines")
	c.Flags().IntVar(&mem, "memory", 192, "memory per machine in MiB")
	c.Flags().IntVar(&uefi, "uefi", 0, "make this many of the last nodes UEFI machines (OVMF) that boot by PXE (before the --uefi-http ones)")
	c.Flags().IntVar(&uefiHTTP, "uefi-http", 0, "make this many of the last nodes UEFI machines (OVMF) that boot by UEFI HTTP boot")
	c.Flags().StringToStringVar(&firmware, "firmware", nil, "firmware of one node, e.g. node-02=uefi-http (bios, uefi or uefi-http; repeatable; wins over the counts; a node no flag names keeps its recorded firmware)")
	c.Flags().IntVar(&gateways, "gateways", 0, "number of bmid gateways (default 1; 2 or more: each in a namespace of its own, keepalived moving the nodes' addresses, PostgreSQL in the lab; a lab keeps the number it was built with)")
	c.Flags().StringVar(&bmid, "bmid", "", "bmid binary (default: next to bmi-lab, else on PATH)")
	c.Flags().StringVar(&cache, "cache", "/var/cache/bmi-lab/images", "golden image cache directory")
	c.Flags().StringVar(&iocheck, "iocheck", "", "the static bmi-lab-io the stay-up image carries (default: next to bmi-lab)")
	return c
}

// bmidCmd is `bmi-lab bmid restart|faults`.
func bmidCmd() *cobra.Command {
	c := &cobra.Command{Use: "bmid", Short: "Operate the lab's bmid (a lab with gateways: each gateway's, rolling) as its service manager would"}
	var f labFlags
	var kill bool
	var binary string
	restart := &cobra.Command{
		Use:   "restart",
		Short: "Restart the lab's bmid: SIGTERM and start (default), SIGKILL and start (--kill), or SIGTERM and start a new binary (--binary, an upgrade); returns when it is ready",
		Long: `Restart the lab's bmid: SIGTERM and start (default), SIGKILL and start (--kill), or SIGTERM and
start a new binary (--binary, an upgrade); returns when it is ready.

A lab brought up with --gateways N restarts rolling, as a multi-gateway site is restarted: one
gateway's bmid at a time (its keepalived runs on), the next only once the site has settled: every
gateway ready and leased in the state database, every disk exported by a live gateway, and the
floating addresses back where keepalived keeps them with every gateway healthy. It refuses while a
gateway is down (bmi-lab gateway start it first). Each gateway's binary is recorded: bmi-lab gateway
start runs it again.`,
		Args: clikit.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if kill && binary != "" {
				return clikit.Usagef("--kill and --binary: choose one")
			}
			mode := lab.RestartGraceful
			switch {
			case kill:
				mode = lab.RestartKill
			case binary != "":
				mode = lab.RestartUpgrade
				abs, err := filepath.Abs(binary)
				if err != nil {
					return err
				}
				binary = abs
			}
			l, err := f.open(c)
			if err != nil {
				return err
			}
			rep, err := l.RestartBmid(c.Context(), mode, binary)
			printGatewaySteps(c.OutOrStdout(), rep)
			if err != nil {
				return err
			}
			if len(rep.Gateways) > 0 {
				_, err = fmt.Fprintf(c.OutOrStdout(), "bmid restarted (%s) on %d gateways, rolling\n", rep.Mode, len(rep.Gateways))
				return err
			}
			_, err = fmt.Fprintf(c.OutOrStdout(), "bmid restarted (%s): pid %d -> %d, stopped in %.2f s, ready %.2f s after start (%s)\n",
				rep.Mode, rep.OldPid, rep.NewPid, rep.Stopped.Seconds(), rep.Ready.Seconds(), rep.Binary)
			return err
		},
	}
	f.add(restart)
	restart.Flags().BoolVar(&kill, "kill", false, "SIGKILL bmid (a crash) instead of SIGTERM")
	restart.Flags().StringVar(&binary, "binary", "", "start this bmid binary instead (an upgrade)")
	c.AddCommand(restart, bmidFaultsCmd())
	return c
}

// printGatewaySteps prints a rolling restart's steps, one line a gateway,
// as the one-bmid restart prints its one.
func printGatewaySteps(w io.Writer, rep lab.RestartReport) {
	for _, g := range rep.Gateways {
		fmt.Fprintf(w, "gateway %s restarted (%s): pid %d -> %d, stopped in %.2f s, ready %.2f s and settled %.2f s after start (%s)\n",
			g.ID, rep.Mode, g.OldPid, g.NewPid, g.Stopped.Seconds(), g.Ready.Seconds(), g.Settled.Seconds(), g.Binary)
	}
}

// bmidFaultsCmd is `bmi-lab bmid faults on|off`: the acceptance suite's
// boot-faults capability.
func bmidFaultsCmd() *cobra.Command {
	var f labFlags
	c := &cobra.Command{
		Use:   "faults on|off",
		Short: "Restart the lab's bmid with faults on its boot path (" + strings.Join(lab.BootFaults, " ") + ") or without; kept across restarts; returns when it is ready (a lab with gateways: every gateway, rolling, as bmid restart)",
		Args:  clikit.ExactArgs("on|off"),
		RunE: func(c *cobra.Command, args []string) error {
			if args[0] != "on" && args[0] != "off" {
				return clikit.Usagef("faults %q: want on or off", args[0])
			}
			l, err := f.open(c)
			if err != nil {
				return err
			}
			rep, err := l.SetBootFaults(c.Context(), args[0] == "on")
			printGatewaySteps(c.OutOrStdout(), rep)
			if err != nil {
				return err
			}
			if len(rep.Gateways) > 0 {
				_, err = fmt.Fprintf(c.OutOrStdout(), "bmid restarted with boot faults %s on %d gateways, rolling\n", args[0], len(rep.Gateways))
				return err
			}
			_, err = fmt.Fprintf(c.OutOrStdout(), "bmid restarted with boot faults %s: pid %d -> %d, ready %.2f s after start\n",
				args[0], rep.OldPid, rep.NewPid, rep.Ready.Seconds())
			return err
		},
	}
	f.add(c)
	return c
}

// hilCmd is `bmi-lab hil stop|start`: HIL down and back, for the
// acceptance suite's hil-stop capability.
func hilCmd() *cobra.Command {
	c := &cobra.Command{Use: "hil", Short: "Stop or start the lab's hil-mock as its service manager would (state kept)"}
	for _, verb := range []string{"stop", "start"} {
		var f labFlags
		sub := &cobra.Command{
			Use:   verb,
			Short: map[string]string{"stop": "Stop the lab's hil-mock: HIL is down for bmid", "start": "Start the lab's hil-mock again (same address and state); returns once it answers"}[verb],
			Args:  clikit.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				l, err := f.open(c)
				if err != nil {
					return err
				}
				if verb == "stop" {
					return l.StopHIL(c.Context())
				}
				return l.StartHIL(c.Context(), self())
			},
		}
		f.add(sub)
		c.AddCommand(sub)
	}
	return c
}

// hilServeCmd is `bmi-lab hil-serve`, which `up` runs inside the lab
// namespace: the lab's hil-mock with its libvirt power and bridge switch
// drivers, until SIGTERM.
func hilServeCmd() *cobra.Command {
	var f labFlags
	var listen string
	c := &cobra.Command{
		Use:    "hil-serve",
		Short:  "Serve the lab's hil-mock with the lab's power and switch drivers (run by up)",
		Hidden: true,
		Args:   clikit.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			l, err := f.open(c)
			if err != nil {
				return err
			}
			log := slog.New(slog.NewJSONHandler(c.ErrOrStderr(), nil))
			s, err := l.NewHIL(c.Context(), listen, log)
			if err != nil {
				return err
			}
			defer s.Close()
			log.Info("hil-mock serving", "url", s.URL(), "lab", l.Name)
			return s.Serve(c.Context())
		},
	}
	f.add(c)
	c.Flags().StringVar(&listen, "listen", "", "address to serve on (lab address:5000)")
	return c
}

// siteEnv adds the site's variables when the site is up: the server and
// the lab operator's credentials under the names bmi reads, so that
// `eval "$(bmi-lab env)"; bmi ls lab` works, and the lab's HIL.
func siteEnv(l *lab.Lab) ([]string, error) {
	cred, err := l.Credentials()
	if err != nil {
		return nil, err
	}
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	return []string{
		// what bmi reads (service/cli): the lab's operator
		"export " + cli.EnvURL + "=" + l.APIURL(),
		"export " + cli.EnvUser + "=" + lab.HILUser,
		"export " + cli.EnvPassword + "=" + q(cred.HILUser),
		"export BMI_PROJECT=" + lab.Project,
		"export BMI_LAB_HIL_URL=" + l.HILURL(),
		"export BMI_LAB_HIL_ADMIN=" + lab.HILAdmin,
		"export BMI_LAB_HIL_ADMIN_PASSWORD=" + q(cred.HILAdmin),
		// the second tenant (the @two-tenants scenarios)
		"export BMI_LAB_OTHER_USER=" + lab.OtherUser,
		"export BMI_LAB_OTHER_PASSWORD=" + q(cred.OtherUser),
		"export BMI_LAB_OTHER_PROJECT=" + lab.OtherProject,
		"export BMI_LAB_BIN=" + q(self()),
		"export BMI_LAB_BMID=" + q(l.BmidBinary()),
	}, nil
}

// self is this bmi-lab's absolute path (empty if unknown).
func self() string {
	p, err := os.Executable()
	if err != nil {
		return ""
	}
	return p
}
