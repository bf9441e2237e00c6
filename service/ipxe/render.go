package ipxe

import (
	"bytes"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/bmi-go/bmi/service/config"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
)

//go:embed templates/*.tmpl
var embedded embed.FS

// Template file names; an operator's template directory may hold either.
const (
	SanbootTemplate  = "sanboot.ipxe.tmpl"
	NoConfigTemplate = "noconfig.ipxe.tmpl"
)

// Spec is what a node needs to boot its disk.
type Spec struct {
	// Node is the node's name (shown in messages only).
	Node string
	// Disk is the name of the disk the node boots (shown in messages only).
	Disk string
	// Portal is the iSCSI portal's IPv4 address or host name.
	Portal string
	// Port is the portal's TCP port; 0 means 3260.
	Port int
	// LUN is the logical unit of the disk.
	LUN int
	// TargetIQN is the iSCSI target name.
	TargetIQN string
	// InitiatorIQN is the name the node logs in with; empty leaves iPXE's
	// default.
	InitiatorIQN string
	// CHAP holds the credentials; nil logs in without CHAP.
	CHAP *CHAP
}

// CHAP holds iSCSI CHAP credentials.
type CHAP struct {
	// User and Secret authenticate the node to the target.
	User   string
	Secret logging.Secret
	// MutualUser and MutualSecret, when set, authenticate the target to
	// the node (iPXE's reverse-username and reverse-password).
	MutualUser   string
	MutualSecret logging.Secret
}

// Options tune the rendered scripts; DefaultOptions gives the defaults.
type Options struct {
	// TemplateDir overrides the embedded templates with files of the same
	// name found there; empty uses the embedded ones.
	TemplateDir string
	// Attempts is how many times sanboot is tried (1-100).
	Attempts int
	// FirstDelay is the wait in seconds after the first failed attempt; it
	// doubles after each further failure.
	FirstDelay int
	// RebootDelay is the pause in seconds before rebooting after the last
	// failed attempt.
	RebootDelay int
	// NoConfigPause is the pause in seconds after the "no boot config"
	// message before iPXE exits.
	NoConfigPause int
}

// OptionsFromConfig turns the boot.ipxe section of bmid's configuration
// into Options.
func OptionsFromConfig(c config.IPXE) Options {
	return Options{
		TemplateDir:   c.TemplateDir,
		Attempts:      c.Attempts,
		FirstDelay:    int(c.RetryDelay / time.Second),
		RebootDelay:   int(c.RebootDelay / time.Second),
		NoConfigPause: int(c.NoConfigPause / time.Second),
	}
}

// Renderer renders iPXE scripts. It is safe for concurrent use.
type Renderer struct {
	opts     Options
	sanboot  *template.Template
	noconfig *template.Template
}

var (
	hostRe    = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$`)
	iqnRe     = regexp.MustCompile(`^(iqn\.[0-9]{4}-[0-9]{2}\.[A-Za-z0-9][A-Za-z0-9.-]*(:[A-Za-z0-9._:-]+)?|eui\.[0-9A-Fa-f]{16})$`)
	plainRe   = regexp.MustCompile(`^[A-Za-z0-9._~+/=:@-]+$`)
	displayOK = func(r rune) bool {
		return r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-+@", r))
	}
)

// maxDisplay bounds the length of a shown name.
const maxDisplay = 64

// NewRenderer loads the templates (embedded, or the operator's from
// opts.TemplateDir) and checks the options and that the templates render.
func NewRenderer(opts Options) (*Renderer, error) {
	if opts.Attempts < 1 || opts.Attempts > 100 || opts.FirstDelay < 0 || opts.FirstDelay > 3600 ||
		opts.RebootDelay < 0 || opts.RebootDelay > 3600 || opts.NoConfigPause < 0 || opts.NoConfigPause > 3600 {
		return nil, fault.Errorf(fault.Invalid, "ipxe script options out of range: attempts 1-100, delays 0-3600 s")
	}
	r := &Renderer{opts: opts}
	var err error
	if r.sanboot, err = load(opts.TemplateDir, SanbootTemplate); err != nil {
		return nil, err
	}
	if r.noconfig, err = load(opts.TemplateDir, NoConfigTemplate); err != nil {
		return nil, err
	}
	// Render once so a broken operator template stops bmid at start.
	sample := Spec{Node: "n", Disk: "d", Portal: "192.0.2.1", TargetIQN: "iqn.2000-01.org.example:d",
		InitiatorIQN: "iqn.2000-01.org.example:n", CHAP: &CHAP{User: "u", Secret: "s", MutualUser: "t", MutualSecret: "r"}}
	if _, err := r.Script(sample); err != nil {
		return nil, err
	}
	if _, err := r.NoConfig(net.HardwareAddr{0, 0, 0, 0, 0, 0}, "sample"); err != nil {
		return nil, err
	}
	return r, nil
}

func load(dir, name string) (*template.Template, error) {
	var text []byte
	var err error
	where := "embedded " + name
	if dir != "" {
		where = filepath.Join(dir, name)
		text, err = os.ReadFile(where)
		if errors.Is(err, fs.ErrNotExist) {
			where, err = "embedded "+name, nil
			text = nil
		} else if err != nil {
			return nil, fmt.Errorf("read ipxe template %s: %w", where, err)
		}
	}
	if text == nil {
		if text, err = embedded.ReadFile("templates/" + name); err != nil {
			return nil, fmt.Errorf("read %s: %w", where, err)
		}
	}
	t, err := template.New(name).Option("missingkey=error").Parse(string(text))
	if err != nil {
		return nil, fault.Errorf(fault.Invalid, "ipxe template %s: %v", where, err)
	}
	return t, nil
}

// Script renders the boot script of spec. A spec whose portal, IQNs or
// numbers are not valid gives an error of kind fault.Invalid; node and
// disk names are escaped, never rejected.
func (r *Renderer) Script(spec Spec) ([]byte, error) {
	port := spec.Port
	if port == 0 {
		port = 3260
	}
	switch {
	case !hostRe.MatchString(spec.Portal):
		return nil, fault.Errorf(fault.Invalid, "boot config of node %q: portal %q is not an IPv4 address or host name", spec.Node, spec.Portal)
	case port < 1 || port > 65535:
		return nil, fault.Errorf(fault.Invalid, "boot config of node %q: port %d out of range", spec.Node, spec.Port)
	case spec.LUN < 0 || spec.LUN > 255:
		return nil, fault.Errorf(fault.Invalid, "boot config of node %q: LUN %d out of range 0-255", spec.Node, spec.LUN)
	case len(spec.TargetIQN) > 223 || !iqnRe.MatchString(spec.TargetIQN):
		return nil, fault.Errorf(fault.Invalid, "boot config of node %q: target name %q is not an iqn. or eui. name", spec.Node, spec.TargetIQN)
	case spec.InitiatorIQN != "" && (len(spec.InitiatorIQN) > 223 || !iqnRe.MatchString(spec.InitiatorIQN)):
		return nil, fault.Errorf(fault.Invalid, "boot config of node %q: initiator name %q is not an iqn. or eui. name", spec.Node, spec.InitiatorIQN)
	}
	data := map[string]any{
		"Node":         Display(spec.Node),
		"Disk":         Display(spec.Disk),
		"URI":          fmt.Sprintf("iscsi:%s::%d:%d:%s", spec.Portal, port, spec.LUN, spec.TargetIQN),
		"Portal":       spec.Portal,
		"Port":         strconv.Itoa(port),
		"LUN":          strconv.Itoa(spec.LUN),
		"TargetIQN":    spec.TargetIQN,
		"InitiatorIQN": spec.InitiatorIQN,
		"CHAP":         nil,
		"MutualCHAP":   nil,
		"Attempts":     r.opts.Attempts,
		"FirstDelay":   r.opts.FirstDelay,
		"RebootDelay":  r.opts.RebootDelay,
	}
	if c := spec.CHAP; c != nil {
		if c.User == "" || c.Secret == "" || len(c.User) > 255 || len(c.Secret) > 255 {
			return nil, fault.Errorf(fault.Invalid, "boot config of node %q: CHAP needs a user and a secret of 1-255 bytes", spec.Node)
		}
		data["CHAP"] = setting("username", c.User, "password", c.Secret.Reveal())
		if c.MutualUser != "" || c.MutualSecret != "" {
			if c.MutualUser == "" || c.MutualSecret == "" || len(c.MutualUser) > 255 || len(c.MutualSecret) > 255 {
				return nil, fault.Errorf(fault.Invalid, "boot config of node %q: mutual CHAP needs a user and a secret of 1-255 bytes", spec.Node)
			}
			data["MutualCHAP"] = setting("reverse-username", c.MutualUser, "reverse-password", c.MutualSecret.Reveal())
		}
	}
	return execute(r.sanboot, data)
}

// NoConfig renders the script for a MAC that has no boot config; reason is
// shown to whoever watches the console (escaped like a name).
func (r *Renderer) NoConfig(mac net.HardwareAddr, reason string) ([]byte, error) {
	return execute(r.noconfig, map[string]any{
		"MAC":    mac.String(),
		"Reason": DisplayText(reason),
		"Pause":  r.opts.NoConfigPause,
	})
}

func execute(t *template.Template, data map[string]any) ([]byte, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, fault.Errorf(fault.Invalid, "render ipxe template %s: %v", t.Name(), err)
	}
	return b.Bytes(), nil
}

// setting returns the iPXE "set" arguments for a user/secret pair: values
// made only of safe characters are written as they are, anything else in
// iPXE's :hex form, so no byte of a credential can reach iPXE's parser.
func setting(userKey, user, secretKey, secret string) map[string]string {
	m := map[string]string{}
	m["UserSetting"], m["User"] = settingValue(userKey, user)
	m["SecretSetting"], m["Secret"] = settingValue(secretKey, secret)
	return m
}

func settingValue(key, v string) (string, string) {
	if plainRe.MatchString(v) {
		return key, v
	}
	h := hex.EncodeToString([]byte(v))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return key + ":hex", b.String()
}

// Display escapes a name for an iPXE script: letters, digits and ._-+@ are
// kept, every other byte becomes '_', and the result is at most 64
// characters ("-" for an empty name). The result contains no whitespace
// and nothing iPXE expands or parses.
func Display(name string) string {
	if name == "" {
		return "-"
	}
	var b strings.Builder
	for _, r := range name {
		if b.Len() >= maxDisplay {
			b.WriteString("...")
			break
		}
		if displayOK(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// DisplayText escapes a message like Display, but keeps single spaces, a
// few punctuation marks, and up to 200 characters.
func DisplayText(s string) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		if b.Len() >= 200 {
			b.WriteString("...")
			break
		}
		switch {
		case displayOK(r) || strings.ContainsRune(",:/", r):
			b.WriteRune(r)
			space = false
		case r == ' ' || r == '\t':
			if !space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = true
		default:
			b.WriteByte('_')
			space = false
		}
	}
	return strings.TrimRight(b.String(), " ")
}
