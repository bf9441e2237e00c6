package cli

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// addCompletion gives every command whose usage names PROJECT, IMAGE,
// DISK, SNAP_NAME or NODE arguments a completion function that asks bmid
// (quietly offering nothing when it cannot: no credentials, not admin).
func (a *app) addCompletion(c *cobra.Command) {
	for _, sub := range c.Commands() {
		a.addCompletion(sub)
	}
	if c.ValidArgsFunction != nil || c.RunE == nil {
		return
	}
	names := strings.Fields(c.Use)
	if len(names) < 2 {
		return
	}
	names = names[1:]
	c.ValidArgsFunction = func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) >= len(names) {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		arg := strings.Trim(names[len(args)], "[]")
		if arg == "FILE" {
			return nil, cobra.ShellCompDirectiveDefault
		}
		return a.candidates(arg, args), cobra.ShellCompDirectiveNoFileComp
	}
}

// candidates lists names for the argument arg given the earlier args
// (the project is the one just before, or the first).
func (a *app) candidates(arg string, args []string) []string {
	c, err := a.client()
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	project := ""
	if len(args) > 0 {
		project = args[0]
	}
	var out []string
	switch {
	case strings.HasSuffix(arg, "PROJECT"):
		ps, _ := c.Projects(ctx)
		for _, p := range ps {
			out = append(out, p.Name)
		}
	case project == "":
	case arg == "IMAGE" || arg == "NEW_NAME":
		ims, _ := c.Images(ctx, project)
		snaps, _ := c.Snapshots(ctx, project)
		for _, im := range append(ims, snaps...) {
			out = append(out, im.Name)
		}
	case arg == "SNAP_NAME":
		snaps, _ := c.Snapshots(ctx, project)
		for _, im := range snaps {
			out = append(out, im.Name)
		}
	case strings.HasPrefix(arg, "DISK"):
		ds, _ := c.Disks(ctx, project)
		for _, d := range ds {
			out = append(out, d.Name)
		}
	case arg == "NODE":
		bs, _ := c.Boots(ctx, project)
		for _, b := range bs {
			out = append(out, b.Node)
		}
	}
	return out
}
