package clikit

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func tree() *cobra.Command {
	root := &cobra.Command{Use: "tool", Short: "a tool"}
	group := &cobra.Command{Use: "snap", Short: "snapshots"}
	var n int
	leaf := &cobra.Command{Use: "ls PROJECT", Short: "list", Args: ExactArgs("PROJECT"),
		RunE: func(c *cobra.Command, args []string) error {
			if args[0] == "fail" {
				return errors.New("project \"fail\": not found")
			}
			c.Printf("listed %s %d\n", args[0], n)
			return nil
		}}
	leaf.Flags().IntVar(&n, "count", 0, "how many")
	group.AddCommand(leaf)
	root.AddCommand(group)
	return Prepare(root)
}

func TestRun(t *testing.T) {
	tests := map[string]struct {
		args       []string
		code       int
		out, err   string // substrings
		oneLineErr bool
	}{
		"ok":                   {args: []string{"snap", "ls", "p1", "--count", "3"}, code: 0, out: "listed p1 3"},
		"help":                 {args: []string{"--help"}, code: 0, out: "Available Commands"},
		"no args prints help":  {args: nil, code: 0, out: "Usage:"},
		"version flag":         {args: []string{"--version"}, code: 0, out: "tool dev"},
		"version command":      {args: []string{"version"}, code: 0, out: "tool dev"},
		"runtime error":        {args: []string{"snap", "ls", "fail"}, code: 1, err: "tool: project \"fail\": not found\n", oneLineErr: true},
		"unknown command":      {args: []string{"bogus"}, code: 2, err: `tool: unknown command "bogus" for "tool"`, oneLineErr: true},
		"unknown subcommand":   {args: []string{"snap", "bogus"}, code: 2, err: `unknown command "bogus" for "tool snap"`, oneLineErr: true},
		"bad flag":             {args: []string{"--frobnicate"}, code: 2, err: "unknown flag: --frobnicate", oneLineErr: true},
		"bad flag value":       {args: []string{"snap", "ls", "p", "--count", "x"}, code: 2, err: `invalid argument "x"`, oneLineErr: true},
		"missing argument":     {args: []string{"snap", "ls"}, code: 2, err: "tool snap ls takes 1 argument(s) (PROJECT), got 0", oneLineErr: true},
		"extra argument":       {args: []string{"version", "x"}, code: 2, err: "takes no arguments", oneLineErr: true},
		"help of a subcommand": {args: []string{"snap", "ls", "--help"}, code: 0, out: "--count"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			root := tree()
			var out, errb bytes.Buffer
			root.SetOut(&out)
			code := Run(context.Background(), root, tc.args, &errb)
			if code != tc.code {
				t.Fatalf("Run(%q) = %d, want %d (stderr %q)", tc.args, code, tc.code, errb.String())
			}
			if !strings.Contains(out.String(), tc.out) {
				t.Errorf("stdout = %q, want %q", out.String(), tc.out)
			}
			if !strings.Contains(errb.String(), tc.err) {
				t.Errorf("stderr = %q, want %q", errb.String(), tc.err)
			}
			if tc.oneLineErr && strings.Count(errb.String(), "\n") != 1 {
				t.Errorf("stderr is not one line: %q", errb.String())
			}
		})
	}
}
