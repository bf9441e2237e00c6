// Command bmi-lab builds and runs the BMI lab on one machine: a single-node Ceph, a VLAN-aware bridge in a network namespace, the HIL emulator, bmid and libvirt VMs that PXE-boot.
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
		Use:   "bmi-lab",
		Short: "BMI hardware-emulation lab: Ceph, VLAN network, HIL emulator, bmid and PXE-booting VMs on one machine",
	}
	root.AddCommand(cephCmd())
	root.AddCommand(downCmd())
	root.AddCommand(statusCmd())
	root.AddCommand(nodesCmd())
	root.AddCommand(consoleCmd())
	root.AddCommand(envCmd())
	root.AddCommand(imageCmd())
	root.AddCommand(upCmd())
	root.AddCommand(bmidCmd(), hilCmd())
	root.AddCommand(hilServeCmd())
	root.AddCommand(gatewayCmd(), apiProxyCmd())
	return clikit.Prepare(root)
}
