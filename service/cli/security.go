package cli

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/client"
	"github.com/bmi-go/bmi/service/clikit"
)

// aclCmd is `bmi iscsi acl ls|add|rm`: the initiator names that may log in
// to a disk's target.
func (a *app) aclCmd() *cobra.Command {
	g := &cobra.Command{Use: "acl", Short: "Show and change which initiator names may log in to a disk's target"}
	change := func(add bool) func(ctx context.Context, c *client.Client, args []string) error {
		return func(ctx context.Context, c *client.Client, args []string) error {
			ch := api.ACLChange{Remove: args[2:]}
			if add {
				ch = api.ACLChange{Add: args[2:]}
			}
			acl, err := c.ChangeACL(ctx, args[0], args[1], ch)
			if err != nil {
				return err
			}
			return a.show(acl, aclTable(acl))
		}
	}
	g.AddCommand(&cobra.Command{
		Use:   "ls PROJECT DISK",
		Short: "Show a disk's ACL: added names, its nodes' names, and what the target enforces",
		Args:  clikit.ExactArgs("PROJECT", "DISK"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			acl, err := c.ACL(ctx, args[0], args[1])
			if err != nil {
				return err
			}
			return a.show(acl, aclTable(acl))
		}),
	}, &cobra.Command{
		Use:   "add PROJECT DISK IQN...",
		Short: "Let initiator names log in to a disk's target",
		Args:  cobra.MinimumNArgs(3),
		RunE:  a.run(change(true)),
	}, &cobra.Command{
		Use:   "rm PROJECT DISK IQN...",
		Short: "Remove initiator names added with add (a node's own name stays while it boots the disk)",
		Args:  cobra.MinimumNArgs(3),
		RunE:  a.run(change(false)),
	})
	return g
}

func aclTable(acl api.ACL) table {
	t := table{head: []string{"INITIATOR", "SOURCE"}}
	for _, n := range acl.Effective {
		var src []string
		for _, x := range acl.Initiators {
			if x == n {
				src = append(src, "added")
			}
		}
		for _, x := range acl.Nodes {
			if x == n {
				src = append(src, "node")
			}
		}
		t.add(n, strings.Join(src, ","))
	}
	return t
}

// auditCmd is `bmi audit ls`.
func (a *app) auditCmd() *cobra.Command {
	g := &cobra.Command{Use: "audit", Short: "The audit log: state-changing API calls, refused logins, iSCSI logins (admin)"}
	var q api.AuditQuery
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List audit entries, newest first",
		Args:  cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, c *client.Client, _ []string) error {
			es, err := c.Audit(ctx, q)
			if err != nil {
				return err
			}
			t := table{head: []string{"AT", "KIND", "ACTOR", "SOURCE", "ACTION", "OBJECT", "OUTCOME"}}
			for _, e := range es {
				t.add(e.At.Local().Format(time.DateTime), e.Kind, e.Actor, e.Source, e.Action, e.Object, e.Outcome)
			}
			return a.show(es, t)
		}),
	}
	ls.Flags().StringVar(&q.Kind, "kind", "", "only api, iscsi or boot entries")
	ls.Flags().StringVar(&q.Actor, "actor", "", "only this user or initiator name")
	ls.Flags().StringVar(&q.Source, "source", "", "only this client address")
	ls.Flags().IntVar(&q.Limit, "limit", 100, "at most this many entries")
	g.AddCommand(ls)
	return g
}
