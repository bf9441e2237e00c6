// Command bmid is the BMI service daemon: REST API, operations, state
// database, embedded iSCSI target and network boot services in one process.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/bmi-go/bmi/service/clikit"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := clikit.Run(ctx, newRoot(), os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}
