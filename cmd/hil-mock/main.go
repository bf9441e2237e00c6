// Command hil-mock is a HIL-compatible REST service (HIL's /v0 API subset) for sites without HIL and for the lab.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/bmi-go/bmi/service/clikit"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := clikit.Run(ctx, newRoot(), os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "hil-mock",
		Short: "HIL emulator: nodes, NICs, VLAN networks and power, speaking HIL's /v0 API",
	}
	return clikit.Prepare(root)
}
