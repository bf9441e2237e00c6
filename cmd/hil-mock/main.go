// Command hil-mock is a HIL-compatible REST service (HIL's /v0 API subset) for sites without HIL and for the lab.
package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/bmi-go/bmi/service/clikit"
	"github.com/bmi-go/bmi/service/hilmock"
	"github.com/bmi-go/bmi/service/logging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := clikit.Run(ctx, newRoot(), os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

// globals are the flags every subcommand shares.
type globals struct {
	db        string
	logFormat string
	logLevel  string
}

func (g *globals) logger() (*slog.Logger, error) {
	return logging.New(os.Stderr, logging.Options{Format: g.logFormat, Level: g.logLevel})
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "hil-mock",
		Short: "HIL emulator: nodes, NICs, VLAN networks and power, speaking HIL's /v0 API",
		Long: `hil-mock emulates HIL (the Hardware Isolation Layer): projects, users, nodes
with NICs and MACs, VLAN networks and power, over the subset of HIL's /v0 REST
API that BMI and its acceptance suite use, with HIL's JSON shapes, status codes
and error types. State is kept in a SQLite database; an inventory file
(configs/hil-mock.example.yaml) seeds it.

Without hardware drivers, power and switch calls are recorded and succeed.
With --drivers FILE (configs/hil-mock-drivers.example.yaml) it powers
machines through a libvirtd, cables NICs on a bmi-lab network's bridges and
serves nodes' serial consoles from their log files.`,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.db, "db", "hil-mock.db", "SQLite database file (created if missing)")
	pf.StringVar(&g.logFormat, "log-format", "auto", "log format: auto, text or json")
	pf.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.AddCommand(serveCmd(g), seedCmd(g), checkCmd(), hashCmd())
	return clikit.Prepare(root)
}

func serveCmd(g *globals) *cobra.Command {
	var listen, inventory, driversPath string
	var shutdown time.Duration
	c := &cobra.Command{
		Use:   "serve",
		Short: "Serve the API until interrupted; seed a new database from --inventory",
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return clikit.Usagef("%v", err)
			}
			var inv *hilmock.Inventory
			if inventory != "" {
				if inv, err = hilmock.ReadInventory(inventory); err != nil {
					return err
				}
			}
			drv := drivers{close: func() error { return nil }}
			if driversPath != "" {
				if drv, err = readDrivers(driversPath, log); err != nil {
					return err
				}
			}
			defer drv.close()
			ctx := cmd.Context()
			s, err := hilmock.New(ctx, g.db, hilmock.Options{Listen: listen, Logger: log, ShutdownTimeout: shutdown,
				Power: drv.power, Switch: drv.sw, Consoles: drv.consoles})
			if err != nil {
				return err
			}
			defer s.Close()
			if inv != nil && s.Fresh() {
				n, err := s.Seed(ctx, inv)
				if err != nil {
					return err
				}
				log.Info("new database seeded", "inventory", inventory, "objects", n)
			} else if inv != nil {
				log.Info("database exists; inventory not applied (use hil-mock seed)", "db", g.db)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "hil-mock listening on %s\n", s.URL())
			return s.Serve(ctx)
		},
	}
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:5000", "address to serve the API on")
	c.Flags().StringVar(&inventory, "inventory", "", "inventory YAML seeding a new database")
	c.Flags().StringVar(&driversPath, "drivers", "", "drivers YAML: power, switch and consoles of real (or lab) machines (configs/hil-mock-drivers.example.yaml); default: calls are recorded, no consoles")
	c.Flags().DurationVar(&shutdown, "shutdown-timeout", 30*time.Second, "how long to wait for requests and network actions at shutdown")
	return c
}

func seedCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "seed INVENTORY",
		Short: "Add what the inventory lists and the database lacks (existing objects are kept)",
		Args:  clikit.ExactArgs("INVENTORY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			inv, err := hilmock.ReadInventory(args[0])
			if err != nil {
				return err
			}
			n, err := hilmock.SeedDB(cmd.Context(), g.db, inv)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d object(s) added\n", g.db, n)
			return nil
		},
	}
}

func checkCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check INVENTORY",
		Short: "Validate an inventory file; exit 0 if it is good",
		Args:  clikit.ExactArgs("INVENTORY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			inv, err := hilmock.ReadInventory(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%d projects, %d users, %d nodes, %d networks)\n",
				args[0], len(inv.Projects), len(inv.Users), len(inv.Nodes), len(inv.Networks))
			return nil
		},
	}
}

func hashCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "hash-password",
		Short: "Read a password from the first line of stdin and print its password_hash",
		RunE: func(cmd *cobra.Command, _ []string) error {
			line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
			line = strings.TrimRight(line, "\r\n")
			if line == "" {
				if err != nil {
					return fmt.Errorf("read password from stdin: %w", err)
				}
				return clikit.Usagef("the password on stdin is empty")
			}
			h, err := hilmock.HashPassword(line)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), h)
			return nil
		},
	}
}
