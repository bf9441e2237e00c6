//go:build ceph_preview

package main

import (
	"os"
	"testing"

	"github.com/spf13/cobra"

	"github.com/bmi-go/bmi/service/daemon"
	"github.com/bmi-go/bmi/service/logging"
	"github.com/bmi-go/bmi/service/procenv"
)

func serveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the service: REST API, iSCSI target and boot services, until SIGTERM or SIGINT",
		Long: `serve loads the configuration, opens the state database (migrating it), connects
to Ceph and HIL, finishes or rolls back any operation a crash interrupted,
re-exports every disk's iSCSI target, and serves until SIGTERM or SIGINT.

It first re-executes itself, once, with the Go runtime settings it wants
(GODEBUG=` + procenv.Setting + `, which keeps the runtime's system monitor
awake: each iSCSI I/O at queue depth 1 saves two to three thread wakeups).
` + procenv.OptOut + `=default, or a schedtrace already in GODEBUG, leaves the runtime as it is.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Before anything starts: the process is replaced, its PID kept.
			var execErr error
			if !testing.Testing() { // a test binary is not bmid
				execErr = procenv.Apply()
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			log, err := logging.New(cmd.ErrOrStderr(), logging.Options{Format: cfg.Log.Format, Level: cfg.Log.Level})
			if err != nil {
				return err
			}
			if execErr != nil {
				log.Warn("could not re-execute with the Go runtime settings; running with the defaults", "godebug", procenv.Setting, "err", execErr)
			}
			log.Info("go runtime", "godebug", os.Getenv("GODEBUG"))
			d, err := daemon.New(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			return d.Run(cmd.Context())
		},
	}
}
