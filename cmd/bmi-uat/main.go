// Command bmi-uat runs BMI's Gherkin acceptance suite against a site (the lab by default) and keeps the results per run.
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
	code := clikit.Run(ctx, newRoot(os.Getenv), os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}
