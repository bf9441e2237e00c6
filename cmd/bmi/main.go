// Command bmi is the BMI operator CLI: images, snapshots, disks, boot configs and projects, over bmid's REST API.
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
		Use:   "bmi",
		Short: "BMI operator CLI",
	}
	return clikit.Prepare(root)
}
