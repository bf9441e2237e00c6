// Command bmi is the BMI operator CLI: images, snapshots, disks, boot configs and projects, over bmid's REST API.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/bmi-go/bmi/service/cli"
	"github.com/bmi-go/bmi/service/clikit"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := clikit.Run(ctx, cli.NewRoot(cli.OSEnv()), os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}
