package cli

import (
	"context"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/client"
	"github.com/bmi-go/bmi/service/clikit"
)

func imageTable(ims []api.Image, parent bool) table {
	t := table{head: []string{"NAME", "KIND", "SIZE", "STATE", "CEPH"}}
	if parent {
		t.head = []string{"SNAPSHOT", "PARENT", "SIZE", "STATE", "CEPH"}
	}
	for _, im := range ims {
		if parent {
			t.add(im.Name, dash(im.Parent), FormatSize(im.Size), im.State, im.CephName)
		} else {
			t.add(im.Name, im.Kind, FormatSize(im.Size), im.State, im.CephName)
		}
	}
	return t
}

func (a *app) showImage(im api.Image) error {
	return a.show(im, imageTable([]api.Image{im}, false))
}

// showDisk fetches a project's disk and shows it.
func (a *app) showDisk(ctx context.Context, c *client.Client, project, disk string) error {
	d, err := c.Disk(ctx, project, disk)
	if err != nil {
		return err
	}
	return a.show(d, diskTable([]api.Disk{d}))
}

func (a *app) lsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ls PROJECT",
		Short: "List a project's images",
		Args:  clikit.ExactArgs("PROJECT"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			ims, err := c.Images(ctx, args[0])
			if err != nil {
				return err
			}
			return a.show(ims, imageTable(ims, false))
		}),
	}
}

func (a *app) rmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm PROJECT IMAGE",
		Short: "Remove an image, snapshot or disk with its Ceph image",
		Args:  clikit.ExactArgs("PROJECT", "IMAGE"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			if err := c.RemoveImage(ctx, args[0], args[1]); err != nil {
				return err
			}
			return a.done(nil, "removed %q from project %q", args[1], args[0])
		}),
	}
}

func (a *app) importCmd() *cobra.Command {
	var req api.ImportRequest
	cmd := &cobra.Command{
		Use:   "import PROJECT CEPH_IMAGE",
		Short: "Import a Ceph image of the pool as a BMI image (admin)",
		Long: `Import makes a flattened copy of CEPH_IMAGE (an image of the pool outside BMI)
with its own protected snapshot, as an image of PROJECT. The source is not
changed (beyond a temporary snapshot, or protecting --snap with --protect).`,
		Args: clikit.ExactArgs("PROJECT", "CEPH_IMAGE"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			req.Source = args[1]
			name := first(req.Name, req.Source)
			if err := a.longOp(ctx, c, "import "+name, func(async bool) (string, error) {
				_, op, err := c.Import(ctx, args[0], req, async)
				return op, err
			}); err != nil {
				return err
			}
			im, err := c.Image(ctx, args[0], name)
			if err != nil {
				return err
			}
			return a.showImage(im)
		}),
	}
	cmd.Flags().StringVar(&req.Name, "name", "", "the image's name in BMI (default: CEPH_IMAGE)")
	cmd.Flags().StringVar(&req.Snap, "snap", "", "import from this existing snapshot of CEPH_IMAGE")
	cmd.Flags().BoolVar(&req.Protect, "protect", false, "protect --snap first")
	return cmd
}

func (a *app) exportCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "export PROJECT IMAGE CEPH_NAME",
		Short: "Copy an image to a new Ceph image outside BMI (admin)",
		Args:  clikit.ExactArgs("PROJECT", "IMAGE", "CEPH_NAME"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			if err := a.longOp(ctx, c, "export "+args[1], func(async bool) (string, error) {
				return c.Export(ctx, args[0], args[1], args[2], async)
			}); err != nil {
				return err
			}
			return a.done(map[string]string{"project": args[0], "image": args[1], "ceph_name": args[2]},
				"exported %q of project %q to Ceph image %q", args[1], args[0], args[2])
		}),
	}
}

func (a *app) cpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cp SRC_PROJECT IMAGE DEST_PROJECT [NEW_NAME]",
		Short: "Copy an image (flattened, independent) to a project",
		Args:  rangeArgs([]string{"SRC_PROJECT", "IMAGE", "DEST_PROJECT"}, "NEW_NAME"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			req := api.CopyRequest{DestProject: args[2]}
			if len(args) == 4 {
				req.Name = args[3]
			}
			if err := a.longOp(ctx, c, "copy "+args[1], func(async bool) (string, error) {
				_, op, err := c.Copy(ctx, args[0], args[1], req, async)
				return op, err
			}); err != nil {
				return err
			}
			im, err := c.Image(ctx, req.DestProject, first(req.Name, args[1]))
			if err != nil {
				return err
			}
			return a.showImage(im)
		}),
	}
}

func (a *app) mvCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "mv SRC_PROJECT IMAGE DEST_PROJECT [NEW_NAME]",
		Short: "Move and/or rename an image (Ceph is not touched)",
		Args:  rangeArgs([]string{"SRC_PROJECT", "IMAGE", "DEST_PROJECT"}, "NEW_NAME"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			req := api.CopyRequest{DestProject: args[2]}
			if len(args) == 4 {
				req.Name = args[3]
			}
			im, err := c.Move(ctx, args[0], args[1], req)
			if err != nil {
				return err
			}
			return a.showImage(im)
		}),
	}
}

func (a *app) proCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "pro PROJECT NODE IMAGE [NETWORK] NIC",
		Short: "Provision a node: clone IMAGE into a disk, export it and boot the node from it",
		Long: `Provision a node: clone IMAGE into a disk named after NODE, export it over
iSCSI and make NODE boot it through NIC.

NETWORK is the User's Guide's form (bmi pro PROJECT NODE IMG NETWORK NIC): it
must be the provisioning network BMI attaches nodes to; another name fails,
naming that network, and nothing is done.`,
		Args: guideArgs("PROJECT NODE IMAGE [NETWORK] NIC", 4),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			req := api.ProvisionRequest{Image: args[2], NIC: args[3]}
			if len(args) == 5 {
				req.Network, req.NIC = args[3], args[4]
			}
			if err := a.longOp(ctx, c, "provision "+args[1], func(async bool) (string, error) {
				_, op, err := c.Provision(ctx, args[0], args[1], req, async)
				return op, err
			}); err != nil {
				return err
			}
			return a.showDisk(ctx, c, args[0], args[1])
		}),
	}
}

func (a *app) dproCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "dpro PROJECT NODE [NETWORK] NIC",
		Short: "Deprovision a node: stop its netboot and delete the disk pro made",
		Long: `Deprovision a node: stop its netboot and delete the disk pro made.

It undoes pro whatever disk the node boots now: it deletes the disk pro made
for the node (if it still exists; a disk the node was switched to with boot
set stays), detaches the NIC BMI attached to the provisioning network and
clears the boot config. A node pro did not make a disk for only has its boot
config cleared.

NETWORK is the User's Guide's form (bmi dpro PROJECT NODE NETWORK NIC): it
must be the provisioning network BMI attaches nodes to; another name fails,
naming that network, and nothing is done.`,
		Args: guideArgs("PROJECT NODE [NETWORK] NIC", 3),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			network, nic := "", args[2]
			if len(args) == 4 {
				network, nic = args[2], args[3]
			}
			if err := c.DeprovisionOn(ctx, args[0], args[1], network, nic); err != nil {
				return err
			}
			return a.done(nil, "deprovisioned node %q of project %q", args[1], args[0])
		}),
	}
}

// guideArgs accepts n arguments, or n+1 in the User's Guide's form with
// the NETWORK argument before the NIC.
func guideArgs(usage string, n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n && len(args) != n+1 {
			return clikit.Usagef("%s takes %s (%d or %d arguments), got %d", cmd.CommandPath(), usage, n, n+1, len(args))
		}
		return nil
	}
}

func bootTable(bs []api.BootConfig) table {
	t := table{head: []string{"NODE", "DISK", "NIC", "MAC", "OWNS DISK"}}
	for _, b := range bs {
		t.add(b.Node, b.Disk, b.NIC, b.MAC, yesNo(b.OwnsDisk))
	}
	return t
}

// provisioned is one row of showpro: a node, the disk it boots and the
// image that disk was cloned from (the original's "Provisioned Image").
type provisioned struct {
	Node  string `json:"node" yaml:"node"`
	Disk  string `json:"disk" yaml:"disk"`
	Image string `json:"image" yaml:"image"`
	NIC   string `json:"nic" yaml:"nic"`
	MAC   string `json:"mac" yaml:"mac"`
}

func (a *app) showproCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "showpro PROJECT",
		Short: "List a project's provisioned nodes, the disks they boot and the images those came from",
		Args:  clikit.ExactArgs("PROJECT"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			bs, err := c.Boots(ctx, args[0])
			if err != nil {
				return err
			}
			ds, err := c.Disks(ctx, args[0])
			if err != nil {
				return err
			}
			parent := make(map[string]string, len(ds))
			for _, d := range ds {
				parent[d.Name] = d.Parent
			}
			rows := make([]provisioned, 0, len(bs))
			t := table{head: []string{"NODE", "DISK", "PROVISIONED IMAGE", "NIC", "MAC"}}
			for _, b := range bs {
				r := provisioned{Node: b.Node, Disk: b.Disk, Image: parent[b.Disk], NIC: b.NIC, MAC: b.MAC}
				rows = append(rows, r)
				t.add(r.Node, r.Disk, dash(r.Image), r.NIC, r.MAC)
			}
			return a.show(rows, t)
		}),
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
