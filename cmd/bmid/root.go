package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/bmi-go/bmi/service/clikit"
	"github.com/bmi-go/bmi/service/config"
)

// defaultConfig is where bmid looks for its configuration when neither
// --config nor BMI_CONFIG says otherwise.
const defaultConfig = "/etc/bmi/bmid.yaml"

// globals are the flags every subcommand shares.
type globals struct {
	configFile string
	sets       []string
	logFormat  string
	logLevel   string
}

// load builds the configuration from the file, the environment and flags.
func (g *globals) load() (config.Config, error) {
	sets := append([]string(nil), g.sets...)
	if g.logFormat != "" {
		sets = append(sets, "log.format="+g.logFormat)
	}
	if g.logLevel != "" {
		sets = append(sets, "log.level="+g.logLevel)
	}
	return config.Load(config.Sources{File: g.configFile, Env: os.Environ(), Sets: sets})
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "bmid",
		Short: "BMI service daemon: diskless bare-metal provisioning from Ceph RBD over iSCSI",
		Long: `bmid is the BMI service: REST API, state database, operations on Ceph RBD,
the embedded iSCSI target and the network boot services (DHCP, TFTP, iPXE).

Configuration comes from one YAML file (--config, or BMI_CONFIG, or
` + defaultConfig + `), overridden by BMI_* environment variables and by
--set key=value flags. configs/bmid.example.yaml documents every key.`,
	}
	cfgDefault := os.Getenv("BMI_CONFIG")
	if cfgDefault == "" {
		cfgDefault = defaultConfig
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&g.configFile, "config", "c", cfgDefault, "configuration file (env BMI_CONFIG)")
	pf.StringArrayVar(&g.sets, "set", nil, "override a configuration key: --set ceph.pool=rbd (repeatable)")
	pf.StringVar(&g.logFormat, "log-format", "", "log format: auto, text or json (key log.format)")
	pf.StringVar(&g.logLevel, "log-level", "", "log level: debug, info, warn or error (key log.level)")
	root.AddCommand(configCmd(g), serveCmd(g), migrateCmd(g))
	return clikit.Prepare(root)
}

func configCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "Check, show and convert configuration"}
	c.AddCommand(
		&cobra.Command{
			Use:   "check",
			Short: "Load and validate the configuration; exit 0 if it is good",
			RunE: func(cmd *cobra.Command, _ []string) error {
				if _, err := g.load(); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", g.configFile)
				return nil
			},
		},
		&cobra.Command{
			Use:   "show",
			Short: "Print the effective configuration (file, environment and flags merged)",
			RunE: func(cmd *cobra.Command, _ []string) error {
				cfg, err := g.load()
				if err != nil {
					return err
				}
				out, err := yaml.Marshal(cfg)
				if err != nil {
					return fmt.Errorf("encode configuration: %w", err)
				}
				_, err = cmd.OutOrStdout().Write(out)
				return err
			},
		},
		&cobra.Command{
			Use:   "convert-legacy BMICONFIG.CFG",
			Short: "Print the bmid YAML equivalent of the original BMI's INI configuration",
			Long: `convert-legacy reads the original BMI's bmiconfig.cfg and prints the
equivalent bmid YAML on standard output, with a comment for every option that
no longer applies and for every required key the old file cannot supply.`,
			Args: clikit.ExactArgs("BMICONFIG.CFG"),
			RunE: func(cmd *cobra.Command, args []string) error {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				out, err := config.ConvertLegacy(f, args[0])
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(out)
				return err
			},
		},
	)
	return c
}
