package config

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/bmi-go/bmi/service/fault"
)

var update = flag.Bool("update", false, "rewrite golden files")

const minimal = "uid: site1\nhil:\n  url: http://127.0.0.1:5000\n"

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bmid.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadMinimal(t *testing.T) {
	cfg, err := Load(Sources{File: writeFile(t, minimal)})
	if err != nil {
		t.Fatalf("Load(minimal) = %v", err)
	}
	if cfg.UID != "site1" || cfg.Ceph.Pool != "rbd" || cfg.Ceph.OpTimeout != 30*time.Second {
		t.Fatalf("Load(minimal) = %+v, want defaults plus the file", cfg)
	}
}

// TestLoadPostgres: a PostgreSQL state without a password in the
// configuration loads, in both forms.
func TestLoadPostgres(t *testing.T) {
	for _, state := range []string{"  dsn: host=/run/postgresql dbname=bmi user=bmid\n", "  dsn: postgres://bmid@db/bmi\n", "  dsn_file: /etc/bmi/state.dsn\n"} {
		cfg, err := Load(Sources{File: writeFile(t, minimal+"state:\n  engine: postgres\n"+state+"security:\n  key_file: /etc/bmi/secret.key\n")})
		if err != nil || cfg.State.Engine != "postgres" {
			t.Errorf("Load(%q) = %+v, %v", state, cfg.State, err)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	tests := map[string]struct {
		body string
		env  []string
		sets []string
		want string // substring of the one-line error
	}{
		"unknown top key":     {body: minimal + "colour: red\n", want: `:4: key "colour": unknown key`},
		"unknown nested key":  {body: minimal + "ceph:\n  pol: x\n", want: `:5: key "ceph.pol": unknown key`},
		"bad duration":        {body: minimal + "ceph:\n  op_timeout: soon\n", want: `:5: key "ceph.op_timeout": invalid value "soon": want a duration`},
		"zero timeout":        {body: minimal + "ceph:\n  op_timeout: 0s\n", want: `key "ceph.op_timeout": must be greater than zero`},
		"time2wait too short": {body: minimal + "iscsi:\n  time2wait: 500ms\n", want: `key "iscsi.time2wait": must be between 1s and 1h0m0s`},
		"drain zero":          {body: minimal + "iscsi:\n  drain_timeout: 0s\n", want: `key "iscsi.drain_timeout": must be between 1ms and 5m0s`},
		"bad bool":            {body: minimal + "iscsi:\n  chap: maybe\n", want: `key "iscsi.chap": invalid value "maybe": want true or false`},
		"list for scalar":     {body: minimal + "ceph:\n  pool: [a, b]\n", want: `key "ceph.pool": want a string`},
		"scalar for section":  {body: minimal + "ceph: rbd\n", want: `key "ceph": want a mapping of keys`},
		"scalar for list":     {body: minimal + "iscsi:\n  listen: 1.2.3.4:3260\n", want: `key "iscsi.listen": want a list of strings`},
		"duplicate key":       {body: minimal + "uid: again\n", want: `key "uid": set twice`},
		"missing uid":         {body: "hil:\n  url: http://h:1\n", want: `key "uid": required`},
		"missing hil url":     {body: "uid: a\n", want: `key "hil.url": required`},
		"bad hil url":         {body: "uid: a\nhil:\n  url: ftp://x\n", want: `key "hil.url": invalid URL "ftp://x"`},
		"bad listen":          {body: minimal + "api:\n  listen: nowhere\n", want: `key "api.listen": invalid address "nowhere"`},
		"bad uid chars":       {body: "uid: 'a b'\nhil:\n  url: http://h:1\n", want: `key "uid": invalid value "a b"`},
		"bad iqn":             {body: minimal + "iscsi:\n  iqn_prefix: example\n", want: `key "iscsi.iqn_prefix"`},
		"bad log format":      {body: minimal + "log:\n  format: xml\n", want: `key "log.format": invalid value "xml": want one of auto, text, json`},
		"tls half":            {body: minimal + "api:\n  tls_cert: /c.pem\n", want: `key "api.tls_key": required when api.tls_cert is set`},
		"dhcp without range":  {body: minimal + "boot:\n  interfaces: [eth1]\n  base_url: http://10.0.0.1:8080\n", want: `key "boot.dhcp.range_start": required`},
		"dhcp range reversed": {body: minimal + "boot:\n  interfaces: [eth1]\n  base_url: http://10.0.0.1:8080\n  dhcp:\n    range_start: 10.0.0.9\n    range_end: 10.0.0.2\n    netmask: '24'\n", want: `key "boot.dhcp.range_end": 10.0.0.2 comes before`},
		"files without dirs":  {body: minimal + "boot:\n  files:\n    enabled: true\n", want: `key "boot.files.pxelinux_dir": required`},
		"api wildcard on boot net": {body: minimal + "api:\n  listen: 0.0.0.0:8080\nboot:\n  http_listen: 10.0.0.1:8081\n",
			want: `key "api.listen": "0.0.0.0:8080" is a wildcard address`},
		"api empty host on boot net": {body: minimal + "api:\n  listen: ':8080'\nboot:\n  http_listen: 10.0.0.1:8081\n",
			want: `key "api.listen": ":8080" is a wildcard address`},
		"boot http is the api": {body: minimal + "api:\n  listen: 10.0.0.1:8080\nboot:\n  http_listen: 10.0.0.1:8080\n",
			want: `key "boot.http_listen": must differ from api.listen`},
		"dhcp without boot http": {body: minimal + "boot:\n  interfaces: [eth1]\n  base_url: http://10.0.0.1:8081\n  dhcp:\n    range_start: 10.0.0.2\n    range_end: 10.0.0.9\n    netmask: '24'\n",
			want: `key "boot.http_listen": required`},
		"zero auth burst":      {body: minimal + "security:\n  auth_fail_burst: 0\n", want: `key "security.auth_fail_burst"`},
		"zero login every":     {body: minimal + "security:\n  login_fail_interval: 0s\n", want: `key "security.login_fail_interval"`},
		"not yaml":             {body: "uid: [\n", want: "bmid.yaml: "},
		"bad state engine":     {body: minimal + "state:\n  engine: mysql\n", want: `key "state.engine": invalid value "mysql": want one of sqlite, postgres`},
		"postgres without dsn": {body: minimal + "state:\n  engine: postgres\nsecurity:\n  key_file: /k\n", want: `key "state.dsn": required: set state.dsn or state.dsn_file`},
		"postgres dsn and file": {body: minimal + "state:\n  engine: postgres\n  dsn: host=/run/postgresql\n  dsn_file: /etc/bmi/dsn\nsecurity:\n  key_file: /k\n",
			want: `key "state.dsn": set state.dsn or state.dsn_file, not both`},
		"postgres password word": {body: minimal + "state:\n  engine: postgres\n  dsn: host=db user=bmid password=hunter2\nsecurity:\n  key_file: /k\n",
			want: `key "state.dsn": holds a password; put the connection string in state.dsn_file`},
		"postgres password spaced": {body: minimal + "state:\n  engine: postgres\n  dsn: host=db password = hunter2\nsecurity:\n  key_file: /k\n", want: `key "state.dsn": holds a password`},
		"postgres password url":    {body: minimal + "state:\n  engine: postgres\n  dsn: postgres://bmid:hunter2@db/bmi\nsecurity:\n  key_file: /k\n", want: `key "state.dsn": holds a password`},
		"postgres password env": {body: minimal + "state:\n  engine: postgres\nsecurity:\n  key_file: /k\n", env: []string{"BMI_STATE_DSN=postgres://db/bmi?password=hunter2"},
			want: `key "state.dsn": holds a password`},
		"postgres without key": {body: minimal + "state:\n  engine: postgres\n  dsn: host=db user=bmid\n", want: `key "security.key_file": required with state.engine postgres`},
		"gateway on sqlite":    {body: minimal + "gateway:\n  id: gw-a\n", want: `key "gateway.id": not used with state.engine sqlite`},
		"gateway bad id":       {body: minimal + "state:\n  engine: postgres\n  dsn: host=db\nsecurity:\n  key_file: /k\n" + "gateway:\n  id: gw a\n", want: `key "gateway.id": invalid value "gw a"`},
		"gateway bad group":    {body: minimal + "state:\n  engine: postgres\n  dsn: host=db\nsecurity:\n  key_file: /k\n" + "gateway:\n  id: gw-a\n  group: \"\"\n", want: `key "gateway.group": required`},
		"gateway short lease": {body: minimal + "state:\n  engine: postgres\n  dsn: host=db\nsecurity:\n  key_file: /k\n" + "gateway:\n  id: gw-a\n  lease: 1s\niscsi:\n  portal: 10.0.0.1:3260\n",
			want: `key "gateway.lease"`},
		"gateway without portal":     {body: minimal + "state:\n  engine: postgres\n  dsn: host=db\nsecurity:\n  key_file: /k\n" + "gateway:\n  id: gw-a\n", want: `key "iscsi.portal": required with gateway.id`},
		"gateway address without id": {body: minimal + "gateway:\n  addresses: [10.0.0.2:3260]\n", want: `key "gateway.addresses": not used with an empty gateway.id`},
		"gateway address bad": {body: minimal + "state:\n  engine: postgres\n  dsn: host=db\nsecurity:\n  key_file: /k\n" + "gateway:\n  id: gw-a\n  addresses: [10.0.1.2:3260, gw-a]\niscsi:\n  portal: 10.0.0.1:3260\n",
			want: `key "gateway.addresses": invalid address "gw-a"`},
		"gateway address twice": {body: minimal + "state:\n  engine: postgres\n  dsn: host=db\nsecurity:\n  key_file: /k\n" + "gateway:\n  id: gw-a\n  addresses: [10.0.1.2:3260, 10.0.1.2:3260]\niscsi:\n  portal: 10.0.0.1:3260\n",
			want: `key "gateway.addresses": 10.0.1.2:3260 is listed twice`},
		"gateway address is the portal": {body: minimal + "state:\n  engine: postgres\n  dsn: host=db\nsecurity:\n  key_file: /k\n" + "gateway:\n  id: gw-a\n  addresses: [10.0.0.1:3260]\niscsi:\n  portal: 10.0.0.1:3260\n",
			want: `key "gateway.addresses": 10.0.0.1:3260 is iscsi.portal`},
		"sqlite with dsn":      {body: minimal + "state:\n  dsn: host=db\n", want: `key "state.dsn": not used with state.engine sqlite`},
		"sqlite without path":  {body: minimal + "state:\n  path: ''\n", want: `key "state.path": required`},
		"top-level list":       {body: "- a\n", want: "want a mapping of keys"},
		"env bad duration":     {body: minimal, env: []string{"BMI_HIL_TIMEOUT=ten"}, want: `environment BMI_HIL_TIMEOUT: key "hil.timeout": invalid value "ten"`},
		"set unknown key":      {body: minimal, sets: []string{"ceph.nope=1"}, want: `flag --set: key "ceph.nope": unknown key`},
		"set not key=value":    {body: minimal, sets: []string{"ceph.pool"}, want: `flag --set: "ceph.pool" is not key=value`},
		"set makes it invalid": {body: minimal, sets: []string{"ceph.pool=bad/pool"}, want: `key "ceph.pool": invalid value "bad/pool"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Load(Sources{File: writeFile(t, tc.body), Env: tc.env, Sets: tc.sets})
			if err == nil {
				t.Fatalf("Load(%q) = nil error, want %q", tc.body, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load(%q) = %q, want it to contain %q", tc.body, err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			if !errors.Is(err, fault.ErrInvalid) {
				t.Fatalf("error %v is not fault.ErrInvalid", err)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(Sources{File: "/nonexistent/bmid.yaml"})
	if err == nil || err.Error() != "/nonexistent/bmid.yaml: cannot read: no such file or directory" {
		t.Fatalf("Load(missing) = %v", err)
	}
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, minimal+"ceph:\n  pool: from-file\n  id: file-id\niscsi:\n  listen: [127.0.0.1:3260]\n")
	cfg, err := Load(Sources{
		File: file,
		Env:  []string{"BMI_CEPH_POOL=from-env", "BMI_ISCSI_LISTEN=127.0.0.1:3261, 127.0.0.2:3260", "BMI_URL=http://ignored", "PATH=/bin"},
		Sets: []string{"ceph.pool=from-flag"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Ceph.Pool != "from-flag" || cfg.Ceph.ID != "file-id" {
		t.Errorf("pool, id = %q, %q; want from-flag, file-id", cfg.Ceph.Pool, cfg.Ceph.ID)
	}
	if got := strings.Join(cfg.ISCSI.Listen, " "); got != "127.0.0.1:3261 127.0.0.2:3260" {
		t.Errorf("iscsi.listen = %q", got)
	}
}

func TestEnvOnly(t *testing.T) {
	cfg, err := Load(Sources{Env: []string{"BMI_UID=envsite", "BMI_HIL_URL=http://h:5000", "BMI_ISCSI_CHAP=false"}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.UID != "envsite" || cfg.ISCSI.CHAP {
		t.Fatalf("cfg = %+v", cfg)
	}
}

// TestExampleDocumentsEveryKey keeps configs/bmid.example.yaml and the schema
// in step: the example loads, and it sets every key.
func TestExampleDocumentsEveryKey(t *testing.T) {
	const example = "../../configs/bmid.example.yaml"
	if _, err := Load(Sources{File: example}); err != nil {
		t.Fatalf("example does not load: %v", err)
	}
	data, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	var tree map[string]any
	if err := yaml.Unmarshal(data, &tree); err != nil {
		t.Fatal(err)
	}
	for _, l := range Leaves() {
		var node any = tree
		for _, part := range strings.Split(l.Key, ".") {
			m, ok := node.(map[string]any)
			if !ok {
				node = nil
				break
			}
			node, ok = m[part]
			if !ok {
				t.Errorf("%s: key %q is not documented", example, l.Key)
				break
			}
		}
	}
}

func TestConvertLegacyGolden(t *testing.T) {
	in, err := os.Open("testdata/bmiconfig.cfg")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	got, err := ConvertLegacy(in, "testdata/bmiconfig.cfg")
	if err != nil {
		t.Fatal(err)
	}
	golden := "testdata/bmiconfig.golden.yaml"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./service/config -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("ConvertLegacy output differs from %s:\n%s", golden, got)
	}
	// The converted file is a valid configuration as it stands.
	cfg, err := Load(Sources{File: writeFile(t, string(got))})
	if err != nil {
		t.Fatalf("converted config does not load: %v", err)
	}
	if cfg.UID != "112233445566778899" || cfg.ISCSI.Portal != "10.10.10.1:3260" || cfg.API.Listen != "127.0.0.1:9000" ||
		cfg.HIL.URL != "http://127.0.0.1:5000" || cfg.Log.Level != "debug" || !cfg.Boot.Files.Enabled {
		t.Fatalf("converted config = %+v", cfg)
	}
	if strings.Contains(string(got), "secret") {
		t.Fatal("the legacy sudo password leaked into the output")
	}
}

func TestConvertLegacyErrors(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"option before section": {"uid = 1\n", "old.cfg:1: option before the first [section]"},
		"bad header":            {"[bmi\n", "old.cfg:1: malformed section header"},
		"no separator":          {"[bmi]\nuid\n", `old.cfg:2: want option = value, got "uid"`},
		"duplicate section":     {"[bmi]\n[bmi]\n", "old.cfg:2: section [bmi] appears twice"},
		"duplicate option":      {"[bmi]\nuid=1\nUID=2\n", `old.cfg:3: option "uid" set twice in [bmi]`},
		"bad bool":              {"[logs]\ndebug = yes\n", `old.cfg: [logs] debug: invalid value "yes": want true or false`},
		"dangling continuation": {"[bmi]\n  more\n", "old.cfg:2: continuation line"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ConvertLegacy(strings.NewReader(tc.in), "old.cfg")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ConvertLegacy(%q) = %v, want %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestConvertLegacyNotesMissing(t *testing.T) {
	out, err := ConvertLegacy(strings.NewReader("[bmi]\nuid = 7\n"), "old.cfg")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "hil.url: required — set it before starting bmid") {
		t.Fatalf("output does not say hil.url is missing:\n%s", out)
	}
}

func TestParseNetmask(t *testing.T) {
	tests := map[string]int{"24": 24, "255.255.255.0": 24, "255.255.0.0": 16, "32": 32}
	for in, want := range tests {
		if got, err := ParseNetmask(in); err != nil || got != want {
			t.Errorf("ParseNetmask(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "33", "255.0.255.0", "x", "::1"} {
		if _, err := ParseNetmask(bad); err == nil {
			t.Errorf("ParseNetmask(%q) = nil error", bad)
		}
	}
}

func FuzzLoadYAML(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("ceph:\n  op_timeout: 1s\niscsi:\n  listen: [a]\n"))
	f.Add([]byte("a: &x {b: *x}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := Default()
		err := decodeYAML(&cfg, data, "fuzz.yaml")
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Fatalf("multi-line error: %q", err)
		}
		_ = cfg.Validate("fuzz.yaml")
	})
}

func FuzzConvertLegacy(f *testing.F) {
	seed, _ := os.ReadFile("testdata/bmiconfig.cfg")
	f.Add(seed)
	f.Add([]byte("[bmi]\nuid: 1\n  cont\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := ConvertLegacy(bytes.NewReader(data), "fuzz.cfg")
		if err != nil {
			return
		}
		var v any
		if err := yaml.Unmarshal(out, &v); err != nil {
			t.Fatalf("output is not YAML: %v\n%s", err, out)
		}
	})
}
