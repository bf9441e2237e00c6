package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/client"
	"github.com/bmi-go/bmi/service/clikit"
)

func (a *app) snapCmd() *cobra.Command {
	g := &cobra.Command{Use: "snap", Short: "Create, list and remove snapshots"}
	g.AddCommand(&cobra.Command{
		Use:   "create PROJECT DISK|NODE SNAP_NAME",
		Short: "Snapshot a disk (or the disk a node boots) into a new image; power the node off first",
		Args:  clikit.ExactArgs("PROJECT", "DISK|NODE", "SNAP_NAME"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			req := api.CreateSnapshotRequest{Disk: args[1], Name: args[2]}
			if err := a.longOp(ctx, c, "snapshot "+args[1], func(async bool) (string, error) {
				_, op, err := c.CreateSnapshot(ctx, args[0], req, async)
				return op, err
			}); err != nil {
				return err
			}
			im, err := c.Image(ctx, args[0], args[2])
			if err != nil {
				return err
			}
			return a.show(im, imageTable([]api.Image{im}, true))
		}),
	}, &cobra.Command{
		Use:   "ls PROJECT",
		Short: "List a project's snapshots and their parents",
		Args:  clikit.ExactArgs("PROJECT"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			ims, err := c.Snapshots(ctx, args[0])
			if err != nil {
				return err
			}
			return a.show(ims, imageTable(ims, true))
		}),
	}, &cobra.Command{
		Use:   "rm PROJECT SNAP_NAME",
		Short: "Remove a snapshot",
		Args:  clikit.ExactArgs("PROJECT", "SNAP_NAME"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			if err := c.RemoveSnapshot(ctx, args[0], args[1]); err != nil {
				return err
			}
			return a.done(nil, "removed snapshot %q from project %q", args[1], args[0])
		}),
	})
	return g
}

func (a *app) projectCmd() *cobra.Command {
	g := &cobra.Command{Use: "project", Short: "Create, list and remove projects (admin)"}
	var force bool
	rm := &cobra.Command{
		Use:   "rm PROJECT",
		Short: "Remove a project; --force removes its nodes' boot configs, disks, snapshots and images first",
		Args:  clikit.ExactArgs("PROJECT"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			if err := c.RemoveProject(ctx, args[0], force); err != nil {
				return err
			}
			return a.done(nil, "removed project %q", args[0])
		}),
	}
	rm.Flags().BoolVar(&force, "force", false, "remove everything the project owns first")
	var id string
	create := &cobra.Command{
		Use:   "create PROJECT",
		Short: "Create a project (its name must be the HIL project's)",
		Args:  clikit.ExactArgs("PROJECT"),
	}
	create.RunE = func(cmd *cobra.Command, args []string) error {
		if id != "" {
			return errProjectID
		}
		return a.run(func(ctx context.Context, c *client.Client, args []string) error {
			p, err := c.CreateProject(ctx, args[0])
			if err != nil {
				return err
			}
			return a.show(p, projectTable([]api.Project{p}))
		})(cmd, args)
	}
	create.Flags().StringVar(&id, "id", "", "the original's forced project id: not kept (prints what replaces it)")
	_ = create.Flags().MarkHidden("id")
	g.AddCommand(create, rm, &cobra.Command{
		Use:   "ls",
		Short: "List projects",
		Args:  clikit.NoArgs,
		RunE: a.run(func(ctx context.Context, c *client.Client, _ []string) error {
			ps, err := c.Projects(ctx)
			if err != nil {
				return err
			}
			return a.show(ps, projectTable(ps))
		}),
	})
	return g
}

func projectTable(ps []api.Project) table {
	t := table{head: []string{"ID", "NAME"}}
	for _, p := range ps {
		t.add(itoa(p.ID), p.Name)
	}
	return t
}

func (a *app) dbCmd() *cobra.Command {
	g := &cobra.Command{Use: "db", Short: "Inspect BMI's image rows (admin)"}
	var f client.DBFilter
	var snaps, clones, public bool
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List image rows of every project",
		Args:  clikit.NoArgs,
		RunE: a.run(func(ctx context.Context, c *client.Client, _ []string) error {
			switch {
			case snaps && clones:
				return clikit.Usagef("--snapshots and --clones exclude each other")
			case snaps:
				f.Kind = "snapshot"
			case clones:
				f.Kind = "disk"
			}
			if public {
				f.Public = &public
			}
			ims, err := c.DBImages(ctx, f)
			if err != nil {
				return err
			}
			t := table{head: []string{"ID", "NAME", "PROJECT", "CEPH", "PUBLIC", "KIND", "PARENT", "STATE"}}
			for _, im := range ims {
				t.add(itoa(im.ID), im.Name, im.Project, im.CephName, yesNo(im.Public), im.Kind, dash(im.Parent), im.State)
			}
			return a.show(ims, t)
		}),
	}
	ls.Flags().BoolVarP(&snaps, "snapshots", "s", false, "only snapshots")
	ls.Flags().BoolVarP(&clones, "clones", "c", false, "only clones (disks)")
	ls.Flags().BoolVarP(&public, "public", "p", false, "only public images")
	ls.Flags().StringVar(&f.Project, "project", "", "only this project's rows")
	ls.Flags().StringVar(&f.Name, "name", "", "only rows with this name")
	ls.Flags().StringVar(&f.Ceph, "ceph", "", "only the row of this Ceph name")
	g.AddCommand(ls, &cobra.Command{
		Use:   "rm PROJECT IMAGE",
		Short: "Remove an image row with its Ceph image (the journaled rm, never a bare row delete)",
		Args:  clikit.ExactArgs("PROJECT", "IMAGE"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			if err := c.RemoveImage(ctx, args[0], args[1]); err != nil {
				return err
			}
			return a.done(nil, "removed %q from project %q", args[1], args[0])
		}),
	})
	return g
}

func (a *app) iscsiCmd() *cobra.Command {
	g := &cobra.Command{Use: "iscsi", Short: "Export, unexport and list iSCSI targets of disks"}
	g.AddCommand(&cobra.Command{
		Use:   "create PROJECT DISK",
		Short: "(Re-)export a disk over iSCSI",
		Args:  clikit.ExactArgs("PROJECT", "DISK"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			t, err := c.ExportDisk(ctx, args[0], args[1])
			if err != nil {
				return err
			}
			return a.show(t, targetTable([]api.TargetInfo{{Target: t, Project: args[0], Disk: args[1], Exported: true}}))
		}),
	}, &cobra.Command{
		Use:   "rm PROJECT DISK",
		Short: "Stop exporting a disk (the disk stays)",
		Args:  clikit.ExactArgs("PROJECT", "DISK"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			if err := c.UnexportDisk(ctx, args[0], args[1]); err != nil {
				return err
			}
			return a.done(nil, "unexported disk %q of project %q", args[1], args[0])
		}),
	}, &cobra.Command{
		Use:   "ls [PROJECT]",
		Short: "List a project's targets (every target without PROJECT: admin)",
		Args:  rangeArgs(nil, "PROJECT"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			project := ""
			if len(args) == 1 {
				project = args[0]
			}
			ts, err := c.Targets(ctx, project)
			if err != nil {
				return err
			}
			return a.show(ts, targetTable(ts))
		}),
	}, a.aclCmd())
	return g
}

func targetTable(ts []api.TargetInfo) table {
	t := table{head: []string{"PROJECT", "DISK", "IQN", "EXPORTED"}}
	for _, x := range ts {
		t.add(x.Project, x.Disk, x.IQN, yesNo(x.Exported))
	}
	return t
}

func (a *app) nodeCmd() *cobra.Command {
	g := &cobra.Command{Use: "node", Short: "Node information"}
	g.AddCommand(&cobra.Command{
		Use:   "ip PROJECT NODE [NIC]",
		Short: "Show the address bmid's DHCP server leased to a node (NIC: default its boot NIC)",
		Args:  rangeArgs([]string{"PROJECT", "NODE"}, "NIC"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			nic := ""
			if len(args) == 3 {
				nic = args[2]
			} else {
				b, err := c.Boot(ctx, args[0], args[1])
				if err != nil {
					return err
				}
				nic = b.NIC
			}
			ip, err := c.NodeIP(ctx, args[0], args[1], nic)
			if err != nil {
				return err
			}
			if a.output == "table" {
				return a.done(nil, "%s", ip.IP)
			}
			return a.show(ip, table{})
		}),
	})
	g.AddCommand(a.timelineCmd())
	return g
}
