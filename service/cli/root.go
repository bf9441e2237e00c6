// Package cli is the bmi operator CLI: every command of the original BMI
// (import, export, cp, mv, pro, dpro, showpro, ls, rm, snap, project, db,
// iscsi, node ip, upload, download), the M2 split (disk, boot), and op,
// reconcile and version, over bmid's JSON API (service/client). Output is
// an aligned table by default and JSON or YAML with --output; any failure
// exits non-zero with one line on stderr (service/clikit).
package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/bmi-go/bmi/service/client"
	"github.com/bmi-go/bmi/service/clikit"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
)

// DefaultURL is bmid's address when neither --url nor BMI_URL is set.
const DefaultURL = "http://127.0.0.1:8080"

// Env is what the CLI touches outside itself; tests replace it.
type Env struct {
	Stdout, Stderr io.Writer
	Stdin          io.Reader
	// Getenv reads the environment (BMI_URL, HIL_USERNAME, HIL_PASSWORD).
	Getenv func(string) string
	// HTTP is the HTTP client; nil means one with sane timeouts.
	HTTP *http.Client
	// Terminal says whether stderr is a terminal (progress bars).
	Terminal bool
}

// OSEnv is the real environment.
func OSEnv() Env {
	return Env{Stdout: os.Stdout, Stderr: os.Stderr, Stdin: os.Stdin, Getenv: os.Getenv, Terminal: logging.IsTerminal(os.Stderr)}
}

// app holds the global flags and the lazily made client.
type app struct {
	env      Env
	url      string
	user     string
	password string
	output   string
	timeout  time.Duration
	// configFlag is --config: the CLI config file.
	configFlag string
	// caCert is --ca-cert: a PEM file of CAs to trust for https.
	caCert string
	cl     *client.Client
}

// NewRoot returns the prepared bmi command tree (run it with clikit.Run).
func NewRoot(env Env) *cobra.Command {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	a := &app{env: env}
	root := &cobra.Command{
		Use:   "bmi",
		Short: "BMI operator CLI: images, snapshots, disks, boot configs and projects on bmid",
		Long: `bmi manages BMI (Bare Metal Imaging) through bmid's API.

The server is --url, else $BMI_URL, else the config file's url, else
` + DefaultURL + `. Credentials are your HIL user name and password:
--user/--password, else $HIL_USERNAME/$HIL_PASSWORD, else the config file
(--config, $BMI_CLI_CONFIG or ~/.config/bmi/cli.yaml; mode 0600 when it
holds a password). Every command prints an aligned table; use
--output json or --output yaml for scripts. Exit status is non-zero on any
failure, with the reason on stderr.`,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			switch a.output {
			case "table", "json", "yaml":
				return nil
			}
			return clikit.Usagef("--output must be table, json or yaml, not %q", a.output)
		},
	}
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.SetIn(env.Stdin)
	f := root.PersistentFlags()
	f.StringVar(&a.url, "url", "", "bmid's URL (default $BMI_URL or "+DefaultURL+")")
	f.StringVarP(&a.user, "user", "u", "", "HIL user name (default $HIL_USERNAME)")
	f.StringVar(&a.password, "password", "", "HIL password (default $HIL_PASSWORD; prefer the variable)")
	f.StringVarP(&a.output, "output", "o", "table", "output format: table, json or yaml")
	f.DurationVar(&a.timeout, "timeout", 0, "give up after this long (0: no limit)")
	f.StringVar(&a.caCert, "ca-cert", "", "PEM file of the CA(s) that signed bmid's certificate (default $BMI_CA_CERT; else the system's)")
	f.StringVar(&a.configFlag, "config", "", "CLI config file with url, user, password (default $BMI_CLI_CONFIG or ~/.config/bmi/cli.yaml)")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))

	root.AddGroup(&cobra.Group{ID: "orig", Title: "Commands of the original BMI:"}, &cobra.Group{ID: "m2", Title: "Disks, boot configs and operations:"})
	for _, c := range []*cobra.Command{
		a.importCmd(), a.exportCmd(), a.cpCmd(), a.mvCmd(), a.proCmd(), a.dproCmd(), a.showproCmd(), a.lsCmd(), a.rmCmd(),
		a.snapCmd(), a.projectCmd(), a.dbCmd(), a.iscsiCmd(), a.nodeCmd(), a.uploadCmd(), a.downloadCmd(), a.auditCmd(),
	} {
		c.GroupID = "orig"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{a.diskCmd(), a.showdisksCmd(), a.bootCmd(), a.opCmd(), a.reconcileCmd()} {
		c.GroupID = "m2"
		root.AddCommand(c)
	}
	addRetired(root)
	a.addCompletion(root)
	return clikit.Prepare(root)
}

// client returns the API client, made on first use so that --help and
// completion work without a server or credentials.
func (a *app) client() (*client.Client, error) {
	if a.cl != nil {
		return a.cl, nil
	}
	fc, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	url := first(a.url, a.env.Getenv(EnvURL), fc.URL, DefaultURL)
	user := first(a.user, a.env.Getenv(EnvUser), fc.User)
	pw := first(a.password, a.env.Getenv(EnvPassword), fc.Password)
	if user == "" {
		return nil, fault.Errorf(fault.Unauthenticated, "no credentials: set HIL_USERNAME and HIL_PASSWORD (or --user and --password)")
	}
	if pw == "" {
		return nil, fault.Errorf(fault.Unauthenticated, "no password for %q: set HIL_PASSWORD (or --password)", user)
	}
	hc := a.env.HTTP
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.ResponseHeaderTimeout = 0 // long operations answer when done
		if ca := first(a.caCert, a.env.Getenv("BMI_CA_CERT")); ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return nil, fault.Errorf(fault.Invalid, "CA certificate: %v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fault.Errorf(fault.Invalid, "CA certificate %s: no PEM certificate in it", ca)
			}
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		hc = &http.Client{Transport: tr}
	}
	c, err := client.New(url, user, logging.Secret(pw), client.WithHTTPClient(hc))
	if err != nil {
		return nil, err
	}
	a.cl = c
	return c, nil
}

// ctx is the command's context with the --timeout applied.
func (a *app) ctx(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	if a.timeout > 0 {
		return context.WithTimeout(ctx, a.timeout)
	}
	return context.WithCancel(ctx)
}

// run wraps a command body: it makes the client and the context.
func (a *app) run(fn func(ctx context.Context, c *client.Client, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := a.client()
		if err != nil {
			return err
		}
		ctx, cancel := a.ctx(cmd)
		defer cancel()
		return fn(ctx, c, args)
	}
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// rangeArgs accepts the required names and up to len(optional) more.
func rangeArgs(required []string, optional ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < len(required) || len(args) > len(required)+len(optional) {
			return clikit.Usagef("%s takes %d to %d argument(s) (%v [%v]), got %d", cmd.CommandPath(),
				len(required), len(required)+len(optional), required, optional, len(args))
		}
		return nil
	}
}
