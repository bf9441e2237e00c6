package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/bmi-go/bmi/lab/cephlab"
	"github.com/bmi-go/bmi/service/clikit"
)

// cephCmd is `bmi-lab ceph start|stop|status|purge --dir D`: the lab's
// single-node Ceph cluster.
func cephCmd() *cobra.Command {
	var (
		dir     string
		netns   string
		osdSize int64
	)
	cluster := func() (*cephlab.Cluster, error) {
		if dir == "" {
			return nil, clikit.Usagef("--dir is required")
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, err
		}
		return cephlab.New(cephlab.Options{
			Dir: abs, NetNS: netns, OSDSize: osdSize,
			Log: slog.New(slog.NewTextHandler(os.Stderr, nil)),
		})
	}
	cmd := &cobra.Command{
		Use:   "ceph",
		Short: "Run the lab's single-node Ceph cluster (1 mon, 1 mgr, 1 OSD; every file under --dir)",
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", "", "directory holding the cluster's files (required)")
	cmd.PersistentFlags().StringVar(&netns, "netns", "", "run every daemon and client command in this network namespace")
	cmd.PersistentFlags().Int64Var(&osdSize, "osd-size", cephlab.DefaultOSDSize, "apparent size in bytes of the OSD's sparse block file (bootstrap only)")

	cmd.AddCommand(&cobra.Command{
		Use:   "start",
		Short: "Bootstrap (empty --dir) or restart the cluster and wait for HEALTH_OK; prints the ceph.conf path",
		Args:  clikit.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := cluster()
			if err != nil {
				return err
			}
			if err := cl.Start(c.Context()); err != nil {
				return err
			}
			_, err = fmt.Fprintln(c.OutOrStdout(), cl.ConfPath())
			return err
		},
	}, &cobra.Command{
		Use:   "stop",
		Short: "Stop the cluster's daemons (by pid file); data is kept",
		Args:  clikit.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := cluster()
			if err != nil {
				return err
			}
			return cl.Stop(c.Context())
		},
	}, &cobra.Command{
		Use:   "status",
		Short: "Show the cluster's daemons and health",
		Args:  clikit.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := cluster()
			if err != nil {
				return err
			}
			st := cl.Status(c.Context())
			w := c.OutOrStdout()
			fmt.Fprintf(w, "dir     %s\nconf    %s\npool    %s\nhealth  %s\n", st.Dir, cl.ConfPath(), cl.Pool(), st.Health)
			for _, d := range st.Daemons {
				if d.Running {
					fmt.Fprintf(w, "%-7s running pid %d rss %d MiB\n", d.Name, d.PID, d.RSSKiB/1024)
				} else {
					fmt.Fprintf(w, "%-7s not running\n", d.Name)
				}
			}
			return nil
		},
	}, &cobra.Command{
		Use:   "purge",
		Short: "Stop the cluster and delete --dir",
		Args:  clikit.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := cluster()
			if err != nil {
				return err
			}
			return cl.Purge(c.Context())
		},
	})
	return cmd
}
