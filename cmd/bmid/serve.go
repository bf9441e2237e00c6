//go:build ceph_preview

package main

import (
	"github.com/spf13/cobra"

	"github.com/bmi-go/bmi/service/daemon"
	"github.com/bmi-go/bmi/service/logging"
)

func serveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the service: REST API, iSCSI target and boot services, until SIGTERM or SIGINT",
		Long: `serve loads the configuration, opens the state database (migrating it), connects
to Ceph and HIL, finishes or rolls back any operation a crash interrupted,
re-exports every disk's iSCSI target, and serves until SIGTERM or SIGINT.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			log, err := logging.New(cmd.ErrOrStderr(), logging.Options{Format: cfg.Log.Format, Level: cfg.Log.Level})
			if err != nil {
				return err
			}
			d, err := daemon.New(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			return d.Run(cmd.Context())
		},
	}
}
