//go:build ceph_preview

package main

import (
	"github.com/spf13/cobra"

	"github.com/bmi-go/bmi/service/daemon"
	"github.com/bmi-go/bmi/service/legacy"
	"github.com/bmi-go/bmi/service/logging"
)

func migrateCmd(g *globals) *cobra.Command {
	var o legacy.Options
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "migrate-legacy --legacy-config BMICONFIG.CFG",
		Short: "Bring an original BMI site (database, Ceph images, tgt targets, boot files) into bmid's state",
		Long:  migrateLong,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			log, err := logging.New(cmd.ErrOrStderr(), logging.Options{Format: cfg.Log.Format, Level: cfg.Log.Level})
			if err != nil {
				return err
			}
			r, err := daemon.MigrateLegacy(cmd.Context(), cfg, o, dryRun, log)
			if err != nil {
				return err
			}
			return r.Write(cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Config, "legacy-config", "", "the original's bmiconfig.cfg (required)")
	f.StringVar(&o.DB, "legacy-db", "", "the original's database (default: its [db] path)")
	f.StringVar(&o.TgtDir, "tgt-dir", legacy.DefaultTgtDir, "tgt's target files")
	f.StringVar(&o.PxelinuxDir, "pxelinux-dir", "", "the original's pxelinux.cfg directory (default: its [tftp] pxelinux_path)")
	f.StringVar(&o.IPXEDir, "ipxe-dir", "", "the original's iPXE scripts (default: its [tftp] ipxe_path)")
	f.BoolVar(&dryRun, "dry-run", false, "check everything and print the report; write nothing")
	_ = cmd.MarkFlagRequired("legacy-config")
	return cmd
}
