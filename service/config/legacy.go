package config

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// iniFile is a parsed INI file: section → option → value, options
// lower-cased as Python's ConfigParser does.
type iniFile struct {
	sections map[string]map[string]string
	order    []string // sections in file order
	keys     map[string][]string
}

func parseINI(r io.Reader, name string) (*iniFile, error) {
	f := &iniFile{sections: map[string]map[string]string{}, keys: map[string][]string{}}
	sc := bufio.NewScanner(r)
	section, lastKey := "", ""
	for line := 1; sc.Scan(); line++ {
		raw := sc.Text()
		trimmed := strings.TrimSpace(raw)
		switch {
		case trimmed == "" || strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, ";"):
			continue
		case raw[0] == ' ' || raw[0] == '\t':
			if lastKey == "" {
				return nil, fmt.Errorf("%s:%d: continuation line with no option before it", name, line)
			}
			f.sections[section][lastKey] += "\n" + trimmed
			continue
		case strings.HasPrefix(trimmed, "["):
			if !strings.HasSuffix(trimmed, "]") {
				return nil, fmt.Errorf("%s:%d: malformed section header %q", name, line, trimmed)
			}
			section = strings.TrimSpace(trimmed[1 : len(trimmed)-1])
			if _, dup := f.sections[section]; dup {
				return nil, fmt.Errorf("%s:%d: section [%s] appears twice", name, line, section)
			}
			f.sections[section] = map[string]string{}
			f.order = append(f.order, section)
			lastKey = ""
			continue
		}
		if section == "" {
			return nil, fmt.Errorf("%s:%d: option before the first [section]", name, line)
		}
		i := strings.IndexAny(trimmed, "=:")
		if i <= 0 {
			return nil, fmt.Errorf("%s:%d: want option = value, got %q", name, line, trimmed)
		}
		key := strings.ToLower(strings.TrimSpace(trimmed[:i]))
		if _, dup := f.sections[section][key]; dup {
			return nil, fmt.Errorf("%s:%d: option %q set twice in [%s]", name, line, key, section)
		}
		f.sections[section][key] = strings.TrimSpace(trimmed[i+1:])
		f.keys[section] = append(f.keys[section], key)
		lastKey = key
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return f, nil
}

// ReadLegacyINI parses the original BMI's INI file (bmiconfig.cfg):
// section → option (lower-cased, as ConfigParser) → value.
func ReadLegacyINI(r io.Reader, name string) (map[string]map[string]string, error) {
	f, err := parseINI(r, name)
	if err != nil {
		return nil, err
	}
	return f.sections, nil
}

// legacyRule says what becomes of one option of the original's INI file.
type legacyRule struct {
	key string // our key; "" when the option no longer applies
	// conv turns the legacy value into ours; nil copies it as a string.
	conv func(v string) (any, error)
	why  string // for options that no longer apply
}

// legacyRules maps "section.option" of bmiconfig.cfg (reference §7.1).
var legacyRules = map[string]legacyRule{
	"bmi.uid":      {key: "uid"},
	"bmi.service":  {why: "targets are always rebuilt from the state database at start"},
	"bmi.snapshot": {key: "ceph.snapshot"},
	"db.path": {key: "state.path", conv: func(v string) (any, error) {
		return filepath.Join(filepath.Dir(v), "bmid.db"), nil
	}, why: "bmid keeps its state in a new database with its own schema; `bmid migrate-legacy` brings the old one's rows over"},
	"fs.id":                        {key: "ceph.id"},
	"fs.pool":                      {key: "ceph.pool"},
	"fs.conf_file":                 {key: "ceph.conf"},
	"fs.keyring":                   {key: "ceph.keyring"},
	"driver.net_isolator":          {why: "HIL is the only network isolator (it was required but ignored)"},
	"driver.iscsi":                 {why: "the iSCSI target is built into bmid (it was required but ignored)"},
	"driver.fs":                    {why: "Ceph RBD is the only image store (it was required but ignored)"},
	"net_isolator.url":             {key: "hil.url", conv: trimV0},
	"iscsi.ip":                     {key: "iscsi.portal", conv: func(v string) (any, error) { return net.JoinHostPort(v, "3260"), nil }},
	"iscsi.password":               {why: "bmid never runs sudo; the sudo password is not needed"},
	"rpc.name_server_ip":           {why: "there is no Pyro4 RPC layer; the CLI talks to the REST API"},
	"rpc.name_server_port":         {why: "there is no Pyro4 RPC layer; the CLI talks to the REST API"},
	"rpc.rpc_server_ip":            {why: "there is no Pyro4 RPC layer; the CLI talks to the REST API"},
	"rpc.rpc_server_port":          {why: "there is no Pyro4 RPC layer; the CLI talks to the REST API"},
	"tftp.pxelinux_path":           {key: "boot.files.pxelinux_dir"},
	"tftp.ipxe_path":               {key: "boot.files.ipxe_dir"},
	"rest_api.ip":                  {why: "merged into api.listen"},
	"rest_api.port":                {why: "merged into api.listen"},
	"logs.path":                    {why: "bmid logs to standard error (JSON when not on a terminal) for journald or a collector"},
	"logs.debug":                   {key: "log.level", conv: debugLevel},
	"logs.verbose":                 {why: "bmid always logs to standard error"},
	"templates.ipxe_template_file": {why: "iPXE templates are set with the boot service's template directory"},
	"templates.tgt_template_file":  {why: "there are no tgt configuration files; targets live in bmid"},
}

func trimV0(v string) (any, error) {
	return strings.TrimSuffix(strings.TrimSuffix(v, "/"), "/v0"), nil
}

func debugLevel(v string) (any, error) {
	b, err := legacyBool(v)
	if err != nil {
		return nil, err
	}
	if b {
		return "debug", nil
	}
	return "info", nil
}

func legacyBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("invalid value %q: want true or false", v)
}

// ConvertLegacy reads the original BMI's INI configuration (bmiconfig.cfg)
// and returns the equivalent bmid YAML, with a comment for every option that
// no longer applies and for every required key the old file could not
// supply. name is used in messages.
func ConvertLegacy(r io.Reader, name string) ([]byte, error) {
	ini, err := parseINI(r, name)
	if err != nil {
		return nil, err
	}
	vals := map[string]any{}
	var notes []string
	for _, sec := range ini.order {
		if sec == "tests" {
			notes = append(notes, "[tests]: test fixtures are not configuration; the acceptance suite reads its site file")
			continue
		}
		for _, opt := range ini.keys[sec] {
			v := ini.sections[sec][opt]
			rule, ok := legacyRules[sec+"."+opt]
			if !ok {
				notes = append(notes, fmt.Sprintf("[%s] %s: unknown to the original BMI; dropped", sec, opt))
				continue
			}
			if rule.key == "" {
				notes = append(notes, fmt.Sprintf("[%s] %s: no longer applies: %s", sec, opt, rule.why))
				continue
			}
			var out any = v
			if rule.conv != nil {
				if out, err = rule.conv(v); err != nil {
					return nil, fmt.Errorf("%s: [%s] %s: %w", name, sec, opt, err)
				}
			}
			if rule.why != "" {
				notes = append(notes, fmt.Sprintf("[%s] %s → %s: %s", sec, opt, rule.key, rule.why))
			}
			vals[rule.key] = out
		}
	}
	if api, ok := ini.sections["rest_api"]; ok && (api["ip"] != "" || api["port"] != "") {
		vals["api.listen"] = net.JoinHostPort(api["ip"], api["port"])
	}
	if _, ok := vals["boot.files.pxelinux_dir"]; ok {
		vals["boot.files.enabled"] = true
	}
	notes = append(notes, missingNotes(vals)...)
	return renderYAML(name, vals, notes)
}

// missingNotes validates the converted keys over the defaults and reports
// what the operator still has to set.
func missingNotes(vals map[string]any) []string {
	cfg := Default()
	for _, l := range Leaves() {
		if v, ok := vals[l.Key]; ok {
			if err := setLeaf(&cfg, l, fmt.Sprint(v), "legacy"); err != nil {
				return []string{fmt.Sprintf("%s: %v", l.Key, err)}
			}
		}
	}
	var notes []string
	for _, ch := range cfg.checks() {
		if ch.problem != "" {
			notes = append(notes, fmt.Sprintf("%s: %s — set it before starting bmid", ch.key, ch.problem))
		}
	}
	return notes
}

func renderYAML(name string, vals map[string]any, notes []string) ([]byte, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "# bmid configuration converted from %s by 'bmid config convert-legacy'.\n", filepath.Base(name))
	b.WriteString("# Keys not listed keep their defaults (configs/bmid.example.yaml documents each one).\n")
	if len(notes) > 0 {
		b.WriteString("#\n# Notes:\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "#   %s\n", n)
		}
	}
	var open []string // sections currently open
	for _, l := range Leaves() {
		v, ok := vals[l.Key]
		if !ok {
			continue
		}
		parts := strings.Split(l.Key, ".")
		secs, leaf := parts[:len(parts)-1], parts[len(parts)-1]
		common := 0
		for common < len(open) && common < len(secs) && open[common] == secs[common] {
			common++
		}
		for i := common; i < len(secs); i++ {
			fmt.Fprintf(&b, "%s%s:\n", strings.Repeat("  ", i), secs[i])
		}
		open = secs
		enc, err := yaml.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", l.Key, err)
		}
		fmt.Fprintf(&b, "%s%s: %s", strings.Repeat("  ", len(secs)), leaf, enc)
	}
	return []byte(b.String()), nil
}
