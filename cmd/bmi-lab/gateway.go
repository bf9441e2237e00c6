package main

import (
	"fmt"
	"log/slog"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bmi-go/bmi/lab"
	"github.com/bmi-go/bmi/service/clikit"
)

// gatewayCmd is `bmi-lab gateway ls|start|kill|pause|resume`: the faults of a
// several-gateway lab's gateways.
func gatewayCmd() *cobra.Command {
	c := &cobra.Command{Use: "gateway", Short: "List, kill, pause, resume or start the bmid gateways of a lab brought up with --gateways N"}
	var lf labFlags
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the lab's gateways: id, bmid pid and state, own portals",
		Args:  clikit.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			l, err := lf.open(c)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "GATEWAY\tBMID\tAPI\tPORTALS")
			for i, g := range l.GatewayList() {
				state := "stopped"
				if g.Bmid.Alive() {
					state = fmt.Sprintf("pid %d", g.Bmid.Pid)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", g.ID, state, l.GatewayAPIURL(i+1), strings.Join(l.GatewayPortals(i+1), " "))
			}
			return tw.Flush()
		},
	}
	lf.add(ls)
	c.AddCommand(ls)
	var sf labFlags
	start := &cobra.Command{
		Use:   "start GATEWAY",
		Short: "Start a killed or stopped gateway again (bmid and keepalived), with the binary it last ran and the lab's boot faults; returns once it is ready",
		Args:  clikit.ExactArgs("GATEWAY"),
		RunE: func(c *cobra.Command, args []string) error {
			l, err := sf.open(c)
			if err != nil {
				return err
			}
			return l.StartGateway(c.Context(), args[0])
		},
	}
	sf.add(start)
	c.AddCommand(start)
	for _, a := range []lab.GatewayAction{lab.GatewayKill, lab.GatewayPause, lab.GatewayResume} {
		var f labFlags
		sub := &cobra.Command{
			Use: string(a) + " GATEWAY",
			Short: map[lab.GatewayAction]string{
				lab.GatewayKill:   "SIGKILL a gateway's bmid (a crash): another gateway fences it and takes its disks over",
				lab.GatewayPause:  "SIGSTOP a gateway's bmid (hung or cut off): its keepalived drops its addresses and another gateway fences it and takes over",
				lab.GatewayResume: "SIGCONT a paused gateway's bmid: taken over meanwhile, it finds its lease lost and stops",
			}[a],
			Args: clikit.ExactArgs("GATEWAY"),
			RunE: func(c *cobra.Command, args []string) error {
				l, err := f.open(c)
				if err != nil {
					return err
				}
				return l.SignalGateway(c.Context(), args[0], a)
			},
		}
		f.add(sub)
		c.AddCommand(sub)
	}
	return c
}

// apiProxyCmd is `bmi-lab api-proxy`, which `up --gateways N` runs in the
// lab namespace: the host's way to the gateways' APIs.
func apiProxyCmd() *cobra.Command {
	var routes []string
	c := &cobra.Command{
		Use:    "api-proxy",
		Short:  "Pass the host's API connections to the lab's ready gateways (run by up --gateways N)",
		Hidden: true,
		Args:   clikit.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			log := slog.New(slog.NewJSONHandler(c.ErrOrStderr(), nil))
			errc := make(chan error, len(routes))
			for _, r := range routes {
				listen, backends, ok := strings.Cut(r, "=")
				if !ok || listen == "" || backends == "" {
					return clikit.Usagef("--route %q: want LISTEN=BACKEND[,BACKEND...]", r)
				}
				p := &lab.APIProxy{Listen: listen, Backends: strings.Split(backends, ","), Log: log.With("listen", listen)}
				go func() { errc <- p.Serve(c.Context()) }()
			}
			for range routes {
				if err := <-errc; err != nil {
					return err
				}
			}
			return nil
		},
	}
	c.Flags().StringArrayVar(&routes, "route", nil, "LISTEN=BACKEND[,BACKEND...] (repeatable)")
	return c
}
