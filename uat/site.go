package uat

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
	"github.com/bmi-go/bmi/steps"
)

// SiteFile is the YAML of configs/uat-<site>.yaml. Secrets are never in
// the file: each credential names the environment variable holding its
// password. Any string value may use ${VAR} to take it from the
// environment (the lab's addresses come from `bmi-lab env`).
type SiteFile struct {
	// Name of the site (reports, result directories).
	Name string `yaml:"name"`
	// API is bmid's URL.
	API string `yaml:"api_url"`
	// BootURL is a boot listener the suite may fetch scripts from as if it
	// were the node (only a bmid with boot.ipxe.require_lease and
	// script_token off serves them so); empty: through the API.
	BootURL string `yaml:"boot_url"`
	// HIL is HIL's URL.
	HIL string `yaml:"hil_url"`
	// Credentials of the administrator, the operator (member of project)
	// and, optionally, another tenant (member of other_project only).
	Credentials struct {
		Admin    CredRef `yaml:"admin"`
		Operator CredRef `yaml:"operator"`
		Other    CredRef `yaml:"other"`
	} `yaml:"credentials"`
	// Project is the operator's project; OtherProject another tenant's.
	Project      string `yaml:"project"`
	OtherProject string `yaml:"other_project"`
	// Nodes of project the suite may provision (two at least).
	Nodes []struct {
		Name string `yaml:"name"`
		NIC  string `yaml:"nic"`
	} `yaml:"nodes"`
	// Ceph: the cluster BMI uses, for read-only checks with the rbd CLI
	// (and the suite's own RBD images).
	Ceph struct {
		Conf     string `yaml:"conf"`
		Pool     string `yaml:"pool"`
		User     string `yaml:"user"`
		ImageMiB int    `yaml:"image_mib"`
	} `yaml:"ceph"`
	// ISCSI: the portal nodes log into.
	ISCSI struct {
		Portal string `yaml:"portal"`
	} `yaml:"iscsi"`
	// NetNS runs rbd and the iSCSI initiator inside this network
	// namespace (the lab's Ceph and portal are only reachable there).
	NetNS string `yaml:"netns"`
	// Capabilities are what the site can do (steps.Capabilities: boots,
	// consoles, two-tenants, hil-stop, ceph-stop, foothold, bmid-restart);
	// a scenario tagged with a capability the site lacks is not run and
	// is reported skipped. Each capability needs its keys below.
	Capabilities []string `yaml:"capabilities"`
	// Consoles is a directory of <node>.log serial consoles, copied into
	// the results.
	Consoles string `yaml:"consoles"`
	// HILConsoles reads the nodes' consoles through HIL's console API
	// (GET /v0/node/<node>/console) in the boot steps. Capability
	// consoles needs this or consoles.
	HILConsoles bool `yaml:"hil_consoles"`
	// BootImage is an image of project that boots the lab's test OS
	// (capability boots); BootTimeout bounds one boot (default 5m).
	BootImage string `yaml:"boot_image"`
	// ProvisioningNetwork is the HIL network nodes netboot on (@boots
	// attaches a NIC that BMI left off it).
	ProvisioningNetwork string        `yaml:"provisioning_network"`
	BootTimeout         time.Duration `yaml:"boot_timeout"`
	// StayUpImage is an image of project that boots the lab's stay-up test
	// OS; with BmidRestart it is what capability bmid-restart needs.
	StayUpImage string `yaml:"stayup_image"`
	// Foothold is a machine on the provisioning network that is no node
	// (capability "foothold", the @attacker scenarios): command is the
	// argv prefix its clients run under (split on blanks), address its
	// own address, boot_url and portal bmid's boot listener and iSCSI
	// portal as it reaches them. All four, or none.
	Foothold struct {
		Command string `yaml:"command"`
		Address string `yaml:"address"`
		BootURL string `yaml:"boot_url"`
		Portal  string `yaml:"portal"`
	} `yaml:"foothold"`
	// BmidRestart are shell commands that restart the site's bmid and
	// return once it serves again.
	BmidRestart struct {
		Graceful string `yaml:"graceful"`
		Kill     string `yaml:"kill"`
		Upgrade  string `yaml:"upgrade"`
	} `yaml:"bmid_restart"`
	// HILControl are shell commands that stop the site's HIL and start it
	// again at the same URL with the same state (capability hil-stop).
	HILControl Control `yaml:"hil_control"`
	// CephControl are shell commands that stop the site's Ceph and start
	// it again, each returning once done (capability ceph-stop).
	CephControl Control `yaml:"ceph_control"`
	// BootFaults are shell commands that turn faults on the site's boot
	// path on and off (bmid's boot.faults), each returning once bmid
	// serves again (capability boot-faults).
	BootFaults struct {
		On  string `yaml:"on"`
		Off string `yaml:"off"`
	} `yaml:"boot_faults"`
}

// Control is a pair of shell commands that stop a service and start it
// again; each returns once done.
type Control struct {
	Stop  string `yaml:"stop"`
	Start string `yaml:"start"`
}

// CredRef names a user and the environment variable of its password.
type CredRef struct {
	User        string `yaml:"user"`
	PasswordEnv string `yaml:"password_env"`
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expand replaces ${VAR} by getenv(VAR); a missing variable is an error
// naming the key.
func expand(key, v string, getenv func(string) string) (string, error) {
	var missing []string
	out := envRef.ReplaceAllStringFunc(v, func(m string) string {
		name := envRef.FindStringSubmatch(m)[1]
		val := getenv(name)
		if val == "" {
			missing = append(missing, name)
		}
		return val
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("%s: environment variable %s is not set", key, strings.Join(missing, ", "))
	}
	return out, nil
}

// SitePath finds the config of site: a path to a YAML file, or a name
// looked up as uat-<name>.yaml in dirs.
func SitePath(site string, dirs []string) (string, error) {
	if strings.HasSuffix(site, ".yaml") || strings.ContainsRune(site, os.PathSeparator) {
		return site, nil
	}
	for _, d := range dirs {
		p := filepath.Join(d, "uat-"+site+".yaml")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fault.Errorf(fault.NotFound, "unknown site %q: no uat-%s.yaml in %s", site, site, strings.Join(dirs, ", "))
}

// Sites lists the site names of the uat-*.yaml files in dirs.
func Sites(dirs []string) []string {
	var out []string
	for _, d := range dirs {
		ms, _ := filepath.Glob(filepath.Join(d, "uat-*.yaml"))
		for _, m := range ms {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m), "uat-"), ".yaml"))
		}
	}
	return out
}

// LoadSite reads a site config. Errors name the file and the key.
// Passwords come from the environment (getenv); a missing one is an error.
func LoadSite(path string, getenv func(string) string) (*steps.Site, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fault.Errorf(fault.NotFound, "site config %s: %v", path, err)
		}
		return nil, fmt.Errorf("site config %s: %w", path, err)
	}
	var f SiteFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fault.Errorf(fault.Invalid, "site config %s: %v", path, err)
	}
	s, err := f.site(getenv, filepath.Dir(path))
	if err != nil {
		return nil, fault.Errorf(fault.Invalid, "site config %s: %v", path, err)
	}
	return s, nil
}

func (f *SiteFile) site(getenv func(string) string, dir string) (*steps.Site, error) {
	s := &steps.Site{Name: f.Name, Project: f.Project, OtherProject: f.OtherProject, Pool: f.Ceph.Pool,
		CephUser: f.Ceph.User, ImageMiB: f.Ceph.ImageMiB, NetNS: f.NetNS, BootImage: f.BootImage, BootTimeout: f.BootTimeout,
		ProvisioningNetwork: f.ProvisioningNetwork, StayUpImage: f.StayUpImage, BmidRestart: map[string]string{},
		HILConsoles: f.HILConsoles}
	fields := []struct {
		key string
		src string
		dst *string
	}{
		{"api_url", f.API, &s.APIURL}, {"boot_url", f.BootURL, &s.BootURL}, {"hil_url", f.HIL, &s.HILURL},
		{"ceph.conf", f.Ceph.Conf, &s.CephConf}, {"iscsi.portal", f.ISCSI.Portal, &s.Portal},
		{"consoles", f.Consoles, &s.Consoles}, {"netns", f.NetNS, &s.NetNS},
	}
	restart := map[string]string{steps.RestartGraceful: f.BmidRestart.Graceful, steps.RestartKill: f.BmidRestart.Kill,
		steps.RestartUpgrade: f.BmidRestart.Upgrade}
	for mode, cmd := range restart {
		v, err := expand("bmid_restart."+mode, cmd, getenv)
		if err != nil {
			return nil, err
		}
		if v != "" {
			s.BmidRestart[mode] = v
		}
	}
	for _, fl := range fields {
		v, err := expand(fl.key, fl.src, getenv)
		if err != nil {
			return nil, err
		}
		*fl.dst = v
	}
	if err := f.foothold(s, getenv); err != nil {
		return nil, err
	}
	// an address given in CIDR form (bmi-lab env's BMI_LAB_BRIDGE_IPV4) is
	// taken without its prefix length
	if host, port, ok := strings.Cut(s.Portal, ":"); ok && strings.Contains(host, "/") {
		host, _, _ = strings.Cut(host, "/")
		s.Portal = host + ":" + port
	}
	if s.CephConf != "" && !filepath.IsAbs(s.CephConf) {
		s.CephConf = filepath.Join(dir, s.CephConf)
	}
	for i, c := range f.Capabilities {
		cp, err := steps.ParseCapability(c)
		if err != nil {
			return nil, fmt.Errorf("capabilities[%d]: %w", i, err)
		}
		s.Capabilities = append(s.Capabilities, cp)
	}
	for _, c := range []struct {
		key string
		in  Control
		set func(shellControl)
	}{
		{"hil_control", f.HILControl, func(c shellControl) { s.HILSwitch = hilControl{c} }},
		{"ceph_control", f.CephControl, func(c shellControl) { s.CephSwitch = cephControl{c} }},
	} {
		if c.in == (Control{}) {
			continue
		}
		stop, err := expand(c.key+".stop", c.in.Stop, getenv)
		if err != nil {
			return nil, err
		}
		start, err := expand(c.key+".start", c.in.Start, getenv)
		if err != nil {
			return nil, err
		}
		if stop == "" || start == "" {
			return nil, fmt.Errorf("%s: stop and start are both required", c.key)
		}
		c.set(shellControl{what: c.key, stop: stop, start: start})
	}
	if f.BootFaults.On != "" || f.BootFaults.Off != "" {
		on, err := expand("boot_faults.on", f.BootFaults.On, getenv)
		if err != nil {
			return nil, err
		}
		off, err := expand("boot_faults.off", f.BootFaults.Off, getenv)
		if err != nil {
			return nil, err
		}
		if on == "" || off == "" {
			return nil, fmt.Errorf("boot_faults: on and off are both required")
		}
		s.BootFaults = faultControl{shellControl{what: "boot_faults", start: on, stop: off}}
	}
	for i, n := range f.Nodes {
		if n.Name == "" || n.NIC == "" {
			return nil, fmt.Errorf("nodes[%d]: name and nic are required", i)
		}
		s.Nodes = append(s.Nodes, steps.Node{Name: n.Name, NIC: n.NIC})
	}
	creds := []struct {
		key string
		ref CredRef
		dst *steps.Credentials
	}{
		{"credentials.admin", f.Credentials.Admin, &s.Admin},
		{"credentials.operator", f.Credentials.Operator, &s.Operator},
		{"credentials.other", f.Credentials.Other, &s.Other},
	}
	for _, c := range creds {
		if c.ref == (CredRef{}) {
			continue
		}
		if c.ref.User == "" || c.ref.PasswordEnv == "" {
			return nil, fmt.Errorf("%s: user and password_env are both required", c.key)
		}
		pw := getenv(c.ref.PasswordEnv)
		if pw == "" {
			return nil, fmt.Errorf("%s.password_env: environment variable %s is not set (the password of %s)", c.key, c.ref.PasswordEnv, c.ref.User)
		}
		*c.dst = steps.Credentials{User: c.ref.User, Password: logging.Secret(pw)}
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// foothold fills s.Foothold from the foothold key: all of its keys or none.
func (f *SiteFile) foothold(s *steps.Site, getenv func(string) string) error {
	fh := f.Foothold
	vals := map[string]*string{"foothold.command": &fh.Command, "foothold.address": &fh.Address,
		"foothold.boot_url": &fh.BootURL, "foothold.portal": &fh.Portal}
	set := 0
	for key, v := range vals {
		x, err := expand(key, *v, getenv)
		if err != nil {
			return err
		}
		if *v = strings.TrimSpace(x); *v != "" {
			set++
		}
	}
	if set == 0 {
		return nil
	}
	for _, key := range []string{"foothold.command", "foothold.address", "foothold.boot_url", "foothold.portal"} {
		if *vals[key] == "" {
			return fmt.Errorf("%s: required when foothold is set (command, address, boot_url and portal)", key)
		}
	}
	if net.ParseIP(fh.Address) == nil {
		return fmt.Errorf("foothold.address: %q is not an IP address", fh.Address)
	}
	if u, err := url.Parse(fh.BootURL); err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("foothold.boot_url: %q is not an http URL", fh.BootURL)
	}
	if _, _, err := net.SplitHostPort(fh.Portal); err != nil {
		return fmt.Errorf("foothold.portal: %q: want host:port", fh.Portal)
	}
	s.Foothold = &steps.Foothold{Command: strings.Fields(fh.Command), Address: fh.Address, BootURL: fh.BootURL, Portal: fh.Portal}
	return nil
}
