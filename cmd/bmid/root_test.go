package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/service/clikit"
)

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("uid: s1\nhil:\n  url: http://127.0.0.1:5000\n"), 0o600)
	os.WriteFile(bad, []byte("uid: s1\nhil:\n  url: http://127.0.0.1:5000\n  tmeout: 3s\n"), 0o600)
	tests := map[string]struct {
		args     []string
		code     int
		out, err string
	}{
		"check good":         {[]string{"config", "check", "-c", good}, 0, "good.yaml: ok", ""},
		"check bad":          {[]string{"config", "check", "-c", bad}, 1, "", `bad.yaml:4: key "hil.tmeout": unknown key`},
		"check missing file": {[]string{"config", "check", "-c", filepath.Join(dir, "nope.yaml")}, 1, "", "nope.yaml: cannot read: no such file or directory"},
		"set overrides":      {[]string{"config", "show", "-c", good, "--set", "ceph.pool=p2", "--log-level", "debug"}, 0, "pool: p2", ""},
		"bad set":            {[]string{"config", "show", "-c", good, "--set", "ceph.op_timeout=x"}, 1, "", `flag --set: key "ceph.op_timeout": invalid value "x"`},
		"bad log flag":       {[]string{"config", "check", "-c", good, "--log-format", "xml"}, 1, "", `key "log.format"`},
		"convert":            {[]string{"config", "convert-legacy", "../../service/config/testdata/bmiconfig.cfg"}, 0, `uid: "112233445566778899"`, ""},
		"convert missing":    {[]string{"config", "convert-legacy", filepath.Join(dir, "none.cfg")}, 1, "", "no such file"},
		"convert no arg":     {[]string{"config", "convert-legacy"}, 2, "", "takes 1 argument(s) (BMICONFIG.CFG)"},
		"unknown subcommand": {[]string{"config", "frob"}, 2, "", `unknown command "frob" for "bmid config"`},
		"bad flag":           {[]string{"--nope"}, 2, "", "unknown flag: --nope"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			root := newRoot()
			var out, errb bytes.Buffer
			root.SetOut(&out)
			code := clikit.Run(context.Background(), root, tc.args, &errb)
			if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.err) {
				t.Fatalf("bmid %q = %d\nstdout %q\nstderr %q\nwant %d, %q, %q", tc.args, code, out.String(), errb.String(), tc.code, tc.out, tc.err)
			}
		})
	}
}
