package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bmi-go/bmi/lab"
	"github.com/bmi-go/bmi/lab/image"
	"github.com/bmi-go/bmi/lab/netns"
	"github.com/bmi-go/bmi/lab/vm"
	"github.com/bmi-go/bmi/service/clikit"
)

// labFlags are the flags every lab command takes: which lab.
type labFlags struct {
	name string
	dir  string
}

func (f *labFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.name, "name", "lab", "lab name (namespace bmilab-<name>)")
	c.Flags().StringVar(&f.dir, "dir", "", "lab directory (default /var/lib/bmi-lab/<name>)")
}

func (f *labFlags) open(c *cobra.Command) (*lab.Lab, error) {
	if err := netns.ValidName(f.name); err != nil {
		return nil, clikit.Usagef("--name: %v", err)
	}
	return lab.New(f.name, f.dir, slog.New(slog.NewTextHandler(c.ErrOrStderr(), nil)))
}

// downCmd is `bmi-lab down`.
func downCmd() *cobra.Command {
	var f labFlags
	var keep bool
	c := &cobra.Command{
		Use:   "down",
		Short: "Remove the lab: machines, libvirtd/virtlogd and every process in its namespace, the namespace with its bridges and taps, the host link, its files (unless --keep-data)",
		Args:  clikit.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			l, err := f.open(c)
			if err != nil {
				return err
			}
			if err := l.Down(c.Context(), keep); err != nil {
				return err
			}
			st, err := l.Status(c.Context())
			if err != nil {
				return err
			}
			if !st.Empty() {
				return fmt.Errorf("lab %q: something is left after down: %+v", l.Name, st)
			}
			_, err = fmt.Fprintf(c.OutOrStdout(), "lab %s removed\n", l.Name)
			return err
		},
	}
	f.add(c)
	c.Flags().BoolVar(&keep, "keep-data", false, "keep the lab directory's files (consoles, libvirt state)")
	return c
}

// statusCmd is `bmi-lab status`.
func statusCmd() *cobra.Command {
	var f labFlags
	var asJSON bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Show what of the lab exists on this machine (checked live: namespace, host link, daemons, processes, ports, machines)",
		Args:  clikit.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			l, err := f.open(c)
			if err != nil {
				return err
			}
			st, err := l.Status(c.Context())
			if err != nil {
				return err
			}
			w := c.OutOrStdout()
			if asJSON {
				return json.NewEncoder(w).Encode(st)
			}
			return printStatus(w, l, st)
		},
	}
	f.add(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func printStatus(w io.Writer, l *lab.Lab, st lab.Status) error {
	if st.Empty() {
		_, err := fmt.Fprintf(w, "lab %s: nothing on this machine (no namespace, host link, daemon, process or port)\n", l.Name)
		return err
	}
	present := map[bool]string{true: "present", false: "absent"}
	pid := func(p int) string {
		if p == 0 {
			return "not running"
		}
		return fmt.Sprintf("pid %d", p)
	}
	var ports []string
	for _, p := range netns.PortNames(st.Ports) {
		v := "no network"
		if st.Ports[p] != 0 {
			v = fmt.Sprintf("vlan %d", st.Ports[p])
		}
		ports = append(ports, p+" ("+v+")")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "lab\t%s (%s)\n", l.Name, l.Dir)
	fmt.Fprintf(tw, "namespace\t%s %s\n", l.Namespace, present[st.Namespace])
	fmt.Fprintf(tw, "host link\t%s %s -> %s %s\n", l.HostIf, l.HostAddr, l.LabAddr, present[st.HostLink])
	fmt.Fprintf(tw, "libvirtd\t%s\n", pid(st.Libvirtd))
	fmt.Fprintf(tw, "virtlogd\t%s\n", pid(st.Virtlogd))
	fmt.Fprintf(tw, "hil-mock\t%s (%s)\n", pid(st.HILMock), l.HILURL())
	if l.Gateways > 1 {
		for i := 1; i <= l.Gateways; i++ {
			fmt.Fprintf(tw, "gateway g%d\t%s (%s)\n", i, pid(st.Gateways[lab.GatewayID(i)]), l.GatewayAPIURL(i))
		}
		fmt.Fprintf(tw, "api\t%s (any ready gateway)\n", l.APIURL())
	} else {
		fmt.Fprintf(tw, "bmid\t%s (%s)\n", pid(st.Bmid), l.APIURL())
	}
	fmt.Fprintf(tw, "processes\t%d in the namespace %v\n", len(st.Processes), st.Processes)
	fmt.Fprintf(tw, "ports\t%s\n", strings.Join(ports, ", "))
	fmt.Fprintf(tw, "machines\t%s\n", strings.Join(st.Machines, ", "))
	return tw.Flush()
}

// nodesCmd is `bmi-lab nodes`.
func nodesCmd() *cobra.Command {
	var f labFlags
	var asJSON bool
	c := &cobra.Command{
		Use:   "nodes",
		Short: "Table of the lab's nodes: name, MAC, firmware, power, VLAN, last boot marker, state record, guest uptime at the marker",
		Args:  clikit.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			l, err := f.open(c)
			if err != nil {
				return err
			}
			rows, err := l.NodeStatuses(c.Context())
			if err != nil {
				return err
			}
			w := c.OutOrStdout()
			if asJSON {
				return json.NewEncoder(w).Encode(rows)
			}
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tMAC\tFIRMWARE\tPOWER\tVLAN\tLAST MARKER\tSTATE FOUND\tUPTIME AT MARKER")
			dash := func(s string) string {
				if s == "" {
					return "-"
				}
				return s
			}
			for _, r := range rows {
				v := "-"
				if r.VLAN != 0 {
					v = fmt.Sprint(r.VLAN)
				}
				up := dash(r.Uptime)
				if r.Uptime != "" {
					up += " s"
				}
				fw := r.Firmware
				if fw == "" {
					fw = vm.FirmwareBIOS
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.MAC, fw, r.Power, v, dash(r.Marker), dash(r.State), up)
			}
			return tw.Flush()
		},
	}
	f.add(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// consoleCmd is `bmi-lab console NODE`.
func consoleCmd() *cobra.Command {
	var f labFlags
	var (
		wait    string
		timeout time.Duration
		fromEnd bool
	)
	c := &cobra.Command{
		Use:   "console NODE",
		Short: "Follow a node's serial console (Ctrl-C ends), or with --wait REGEX wait until the console shows it",
		Args:  clikit.ExactArgs("NODE"),
		RunE: func(c *cobra.Command, args []string) error {
			l, err := f.open(c)
			if err != nil {
				return err
			}
			n, err := l.Node(args[0])
			if err != nil {
				return err
			}
			con := vm.Console{Path: n.Serial}
			var from int64
			if fromEnd {
				from = con.Offset()
			}
			if wait == "" {
				return con.Follow(c.Context(), from, c.OutOrStdout())
			}
			re, err := regexp.Compile(wait)
			if err != nil {
				return clikit.Usagef("--wait: %v", err)
			}
			m, err := con.WaitFor(c.Context(), from, re, timeout)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.OutOrStdout(), "%s (after %.1f s)\n", strings.TrimSpace(m.Groups[0]), m.After.Seconds())
			return err
		},
	}
	f.add(c)
	c.Flags().StringVar(&wait, "wait", "", "wait until the console matches this regular expression, print the match and exit 0 (1 on --timeout)")
	c.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long --wait waits")
	c.Flags().BoolVar(&fromEnd, "from-end", false, "start at the current end of the console instead of its beginning")
	return c
}

// envCmd is `bmi-lab env`.
func envCmd() *cobra.Command {
	var f labFlags
	c := &cobra.Command{
		Use:   "env",
		Short: "Print the lab's variables as shell exports (eval \"$(bmi-lab env)\"): addresses, namespace, libvirt socket",
		Args:  clikit.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			l, err := f.open(c)
			if err != nil {
				return err
			}
			if len(l.Nodes) == 0 {
				return fmt.Errorf("lab %q has no lab.json in %s: is it built?", l.Name, l.Dir)
			}
			lines := l.ExportLines()
			if l.Up() {
				site, err := siteEnv(l)
				if err != nil {
					return err
				}
				lines = append(site, lines...)
			}
			_, err = fmt.Fprintln(c.OutOrStdout(), strings.Join(lines, "\n"))
			return err
		},
	}
	f.add(c)
	return c
}

// imageCmd is `bmi-lab image`.
func imageCmd() *cobra.Command {
	var cache, kernel string
	c := &cobra.Command{
		Use:   "image",
		Short: "Build the golden test image from Debian packages (cached by content) and print its path",
		Args:  clikit.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			im, err := image.Build(c.Context(), image.Options{CacheDir: cache, KernelVersion: kernel,
				Log: slog.New(slog.NewTextHandler(os.Stderr, nil))})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(c.OutOrStdout(), im.Path)
			return err
		},
	}
	c.Flags().StringVar(&cache, "cache", "/var/cache/bmi-lab/images", "image cache directory")
	c.Flags().StringVar(&kernel, "kernel", "", "kernel version in /boot (default: the newest)")
	return c
}
