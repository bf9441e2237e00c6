// Package clikit gives BMI's binaries one behaviour on the command line:
// --help and --version on every binary, one line on stderr for every error,
// exit code 2 for usage errors (unknown command, bad flag, wrong arguments)
// and 1 for everything else.
package clikit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bmi-go/bmi/service/version"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// UsageError is an error in how a command was called.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// ExactArgs is cobra.ExactArgs returning a UsageError that names the
// expected arguments, e.g. ExactArgs("PROJECT", "IMAGE").
func ExactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return Usagef("%s takes %d argument(s) (%s), got %d", cmd.CommandPath(), len(names), strings.Join(names, " "), len(args))
		}
		return nil
	}
}

// NoArgs refuses any positional argument with a UsageError.
func NoArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return Usagef("%s takes no arguments, got %q", cmd.CommandPath(), args[0])
	}
	return nil
}

// Prepare sets up a command tree: version flag and subcommand on the root,
// silenced cobra error printing (Run prints one line instead), usage errors
// for bad flags, and group commands (those with subcommands and no Run of
// their own) that refuse unknown subcommands instead of printing help and
// exiting 0.
func Prepare(root *cobra.Command) *cobra.Command {
	root.Version = version.String()
	root.SetVersionTemplate(root.Name() + " {{.Version}}\n")
	root.SilenceErrors = true
	root.SilenceUsage = true
	root.CompletionOptions.HiddenDefaultCmd = true
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &UsageError{Err: fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the version and exit",
		Args:  NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(c.OutOrStdout(), "%s %s\n", root.Name(), version.String())
			return err
		},
	})
	guardGroups(root)
	return root
}

func guardGroups(c *cobra.Command) {
	if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
		c.Args = cobra.ArbitraryArgs
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return Usagef("unknown command %q for %q (see '%s --help')", args[0], cmd.CommandPath(), cmd.CommandPath())
			}
			return cmd.Help()
		}
	}
	if c.Args == nil {
		c.Args = NoArgs
	}
	for _, sub := range c.Commands() {
		guardGroups(sub)
	}
}

// Run executes the prepared root with args, prints any error as one line on
// stderr prefixed by the binary's name, and returns the exit code.
func Run(ctx context.Context, root *cobra.Command, args []string, stderr io.Writer) int {
	root.SetArgs(args)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	msg := strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", " ")
	fmt.Fprintf(stderr, "%s: %s\n", root.Name(), msg)
	if IsUsage(err) {
		return ExitUsage
	}
	return ExitFailure
}

// IsUsage reports whether err is a usage error, including the ones cobra
// makes itself.
func IsUsage(err error) bool {
	var ue *UsageError
	if errors.As(err, &ue) {
		return true
	}
	s := err.Error()
	return strings.HasPrefix(s, "unknown command") || strings.HasPrefix(s, "required flag(s)") ||
		strings.HasPrefix(s, "invalid argument") || strings.HasPrefix(s, "unknown flag") ||
		strings.HasPrefix(s, "unknown shorthand flag")
}
