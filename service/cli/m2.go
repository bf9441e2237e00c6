package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/client"
	"github.com/bmi-go/bmi/service/clikit"
)

func diskTable(ds []api.Disk) table {
	t := table{head: []string{"DISK", "SOURCE IMAGE", "SIZE", "STATE", "IQN", "NODES"}}
	for _, d := range ds {
		iqn := "-"
		if d.Target != nil {
			iqn = d.Target.IQN
		}
		t.add(d.Name, dash(d.Parent), FormatSize(d.Size), d.State, iqn, dash(strings.Join(d.Nodes, ",")))
	}
	return t
}

func (a *app) listDisks() func(*cobra.Command, []string) error {
	return a.run(func(ctx context.Context, c *client.Client, args []string) error {
		ds, err := c.Disks(ctx, args[0])
		if err != nil {
			return err
		}
		return a.show(ds, diskTable(ds))
	})
}

func (a *app) diskCmd() *cobra.Command {
	g := &cobra.Command{Use: "disk", Short: "Create, list and remove disks (exported clones of images)"}
	g.AddCommand(&cobra.Command{
		Use:   "create PROJECT IMAGE DISK",
		Short: "Clone IMAGE into a new disk and export it over iSCSI",
		Args:  clikit.ExactArgs("PROJECT", "IMAGE", "DISK"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			req := api.CreateDiskRequest{Image: args[1], Name: args[2]}
			if err := a.longOp(ctx, c, "disk "+args[2], func(async bool) (string, error) {
				_, op, err := c.CreateDisk(ctx, args[0], req, async)
				return op, err
			}); err != nil {
				return err
			}
			return a.showDisk(ctx, c, args[0], args[2])
		}),
	}, &cobra.Command{
		Use:     "rm PROJECT DISK",
		Aliases: []string{"delete"},
		Short:   "Unexport and remove a disk no node boots",
		Args:    clikit.ExactArgs("PROJECT", "DISK"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			if err := c.DeleteDisk(ctx, args[0], args[1]); err != nil {
				return err
			}
			return a.done(nil, "removed disk %q from project %q", args[1], args[0])
		}),
	}, &cobra.Command{
		Use:   "ls PROJECT",
		Short: "List a project's disks, their targets and nodes",
		Args:  clikit.ExactArgs("PROJECT"),
		RunE:  a.listDisks(),
	}, &cobra.Command{
		Use:   "show PROJECT DISK",
		Short: "Show a disk",
		Args:  clikit.ExactArgs("PROJECT", "DISK"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			return a.showDisk(ctx, c, args[0], args[1])
		}),
	}, &cobra.Command{
		Use:   "sanboot PROJECT DISK",
		Short: "Print the iPXE sanboot URI of a disk (for a boot manager that writes its own scripts)",
		Long: `Print iPXE's iscsi:<portal>::<port>:<lun>:<iqn> URI of a disk, for a boot manager
that writes its own iPXE scripts (Foreman, the original's M2 split). The node
must log in under a name of the disk's ACL (bmi iscsi acl ls) and, when the
target requires CHAP, with the disk's CHAP user and secret (administrators:
the credentials route). -o json also gives the parts, the CHAP user and the
ACL.`,
		Args: clikit.ExactArgs("PROJECT", "DISK"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			sb, err := c.Sanboot(ctx, args[0], args[1])
			if err != nil {
				return err
			}
			if a.output == "table" {
				return a.done(nil, "%s", sb.URI)
			}
			return a.show(sb, table{})
		}),
	}, &cobra.Command{
		Use:   "rotate-secret PROJECT DISK",
		Short: "Give a disk's target a new CHAP secret (new logins only; reboot the node to use it)",
		Args:  clikit.ExactArgs("PROJECT", "DISK"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			t, err := c.RotateSecret(ctx, args[0], args[1])
			if err != nil {
				return err
			}
			return a.done(t, "new CHAP secret for disk %q of project %q (target %s); its node gets it from its next boot script", args[1], args[0], t.IQN)
		}),
	})
	return g
}

func (a *app) showdisksCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "showdisks PROJECT",
		Short: "List a project's disks (as disk ls; the original V-C name)",
		Args:  clikit.ExactArgs("PROJECT"),
		RunE:  a.listDisks(),
	}
}

func (a *app) bootCmd() *cobra.Command {
	g := &cobra.Command{Use: "boot", Short: "Set, show and clear which disk a node boots"}
	g.AddCommand(&cobra.Command{
		Use:   "set PROJECT NODE DISK NIC",
		Short: "Make NODE boot DISK through its NIC (the MAC comes from HIL)",
		Long: `Make NODE boot DISK through its NIC (the MAC comes from HIL).

Where BMI attaches nodes to a provisioning network (hil.provisioning_network,
or the project's own with boot.networks), the NIC is attached to it unless
BMI attached it already; boot clear and dpro detach it. A node pro made a disk
for keeps that disk as its own while it boots another: dpro deletes it.`,
		Args: clikit.ExactArgs("PROJECT", "NODE", "DISK", "NIC"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			b, err := c.SetBoot(ctx, args[0], args[1], api.SetBootRequest{Disk: args[2], NIC: args[3]})
			if err != nil {
				return err
			}
			return a.show(b, bootTable([]api.BootConfig{b}))
		}),
	}, &cobra.Command{
		Use:   "show PROJECT NODE",
		Short: "Show which disk a node boots",
		Args:  clikit.ExactArgs("PROJECT", "NODE"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			b, err := c.Boot(ctx, args[0], args[1])
			if err != nil {
				return err
			}
			return a.show(b, bootTable([]api.BootConfig{b}))
		}),
	}, &cobra.Command{
		Use:   "clear PROJECT NODE",
		Short: "Stop a node from netbooting (its disk stays)",
		Long: `Stop a node from netbooting. Its disk stays, and so does a disk pro made
for it (dpro deletes that one); the NIC leaves the provisioning network if BMI
attached it.`,
		Args: clikit.ExactArgs("PROJECT", "NODE"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			if err := c.ClearBoot(ctx, args[0], args[1]); err != nil {
				return err
			}
			return a.done(nil, "cleared the boot config of node %q", args[1])
		}),
	}, &cobra.Command{
		Use:   "ls PROJECT",
		Short: "List a project's boot configs",
		Args:  clikit.ExactArgs("PROJECT"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			bs, err := c.Boots(ctx, args[0])
			if err != nil {
				return err
			}
			return a.show(bs, bootTable(bs))
		}),
	})
	return g
}

func opTable(ops []api.Operation) table {
	t := table{head: []string{"ID", "KIND", "PROJECT", "TARGET", "USER", "STATE", "PROGRESS", "ERROR"}}
	for _, o := range ops {
		t.add(o.ID, o.Kind, dash(o.Project), dash(o.Target), o.Principal, o.State, fmt.Sprintf("%.0f%%", o.Progress*100), dash(o.Error))
	}
	return t
}

func (a *app) showOp(o api.Operation) error {
	if a.output != "table" {
		return a.show(o, table{})
	}
	if err := writeTable(a.env.Stdout, opTable([]api.Operation{o})); err != nil {
		return err
	}
	t := table{head: []string{"STEP", "NAME", "STATE"}}
	for _, s := range o.Steps {
		t.add(fmt.Sprint(s.Seq), s.Name, s.State)
	}
	fmt.Fprintln(a.env.Stdout)
	return writeTable(a.env.Stdout, t)
}

func (a *app) opCmd() *cobra.Command {
	g := &cobra.Command{Use: "op", Short: "List, show and wait for journaled operations"}
	var state string
	var limit int
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List recent operations (admin)",
		Args:  clikit.NoArgs,
		RunE: a.run(func(ctx context.Context, c *client.Client, _ []string) error {
			ops, err := c.Ops(ctx, state, limit)
			if err != nil {
				return err
			}
			return a.show(ops, opTable(ops))
		}),
	}
	ls.Flags().StringVar(&state, "state", "", "only operations in this state: running, done, failed, rolled_back")
	ls.Flags().IntVar(&limit, "limit", 50, "at most this many")
	_ = ls.RegisterFlagCompletionFunc("state", cobra.FixedCompletions([]string{"running", "done", "failed", "rolled_back"}, cobra.ShellCompDirectiveNoFileComp))
	var every time.Duration
	wait := &cobra.Command{
		Use:   "wait ID",
		Short: "Wait until an operation has finished; fails unless it ended done",
		Args:  clikit.ExactArgs("ID"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			o, err := c.WaitOp(ctx, args[0], every, nil)
			if err != nil {
				return err
			}
			return a.showOp(o)
		}),
	}
	wait.Flags().DurationVar(&every, "interval", 500*time.Millisecond, "poll interval")
	g.AddCommand(ls, &cobra.Command{
		Use:   "show ID",
		Short: "Show an operation with its journal",
		Args:  clikit.ExactArgs("ID"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			o, err := c.Op(ctx, args[0])
			if err != nil {
				return err
			}
			return a.showOp(o)
		}),
	}, wait)
	return g
}

func (a *app) reconcileCmd() *cobra.Command {
	var fix bool
	cmd := &cobra.Command{
		Use:   "reconcile",
		Short: "Finish unfinished operations and compare Ceph, targets and boot files with the database (admin)",
		Long: "Finish unfinished operations and compare Ceph, the iSCSI targets and the boot files with the database (admin).\n" +
			"--fix removes orphan images, stray targets and stray boot files. The \"left\" row lists what is still\n" +
			"there and why; the exit status is 1 while anything is left or could not be checked.",
		Args: clikit.NoArgs,
		RunE: a.run(func(ctx context.Context, c *client.Client, _ []string) error {
			r, err := c.Reconcile(ctx, fix)
			if err != nil {
				return err
			}
			t := table{head: []string{"CHECK", "FOUND"}}
			t.add("recovered operations", fmt.Sprint(r.Recovered))
			for _, row := range []struct {
				name string
				v    []string
			}{{"orphan images", r.OrphanImages}, {"missing images", r.MissingImages}, {"stray targets", r.StrayTargets},
				{"re-exported", r.Reexported}, {"stray boot files", r.StrayBootFiles}, {"left", r.Left}, {"errors", r.Errors}} {
				t.add(row.name, dash(strings.Join(row.v, "; ")))
			}
			t.add("fixed", yesNo(r.Fixed))
			if err := a.show(r, t); err != nil {
				return err
			}
			if n := len(r.Left) + len(r.Errors); n > 0 {
				return fmt.Errorf("reconcile: %d problem(s) left (see the left and errors rows)", n)
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&fix, "fix", false, "remove orphans and strays; exits 1 unless nothing is left")
	return cmd
}
