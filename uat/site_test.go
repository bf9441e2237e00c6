package uat

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/features"
	"github.com/bmi-go/bmi/service/fault"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestShippedSiteConfigs(t *testing.T) {
	tests := map[string]struct {
		env        map[string]string
		twoTenants bool
		netns      string
		caps       string
	}{
		"example": {env: map[string]string{"BMI_UAT_ADMIN_PASSWORD": "a", "BMI_UAT_OPERATOR_PASSWORD": "o", "BMI_UAT_OTHER_PASSWORD": "x"}, twoTenants: true, caps: "two-tenants"},
		"lab": {env: map[string]string{"BMI_URL": "http://169.254.7.2:8080", "BMI_LAB_HIL_URL": "http://169.254.7.2:5000",
			"BMI_LAB_HIL_ADMIN_PASSWORD": "a", "HIL_PASSWORD": "o", "BMI_LAB_DIR": "/var/lib/bmi-lab/lab",
			"BMI_LAB_BRIDGE_IPV4": "10.77.0.1/24", "BMI_LAB_NAMESPACE": "bmilab-lab", "BMI_LAB_BIN": "/usr/bin/bmi-lab",
			"BMI_LAB_BMID": "/usr/bin/bmid", "BMI_LAB_NAME": "lab", "BMI_LAB_OTHER_USER": "lab-b", "BMI_LAB_OTHER_PASSWORD": "x",
			"BMI_LAB_OTHER_PROJECT": "lab-b", "BMI_LAB_FOOTHOLD": "bmilab-lab-fh", "BMI_LAB_FOOTHOLD_ADDR": "10.77.10.66",
			"BMI_LAB_FOOTHOLD_BOOT_URL": "http://10.77.10.1:8081", "BMI_LAB_FOOTHOLD_PORTAL": "10.77.10.1:3260"},
			netns: "bmilab-lab", twoTenants: true, caps: "boots consoles two-tenants hil-stop ceph-stop foothold bmid-restart boot-faults"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := SitePath(name, []string{"../configs"})
			if err != nil {
				t.Fatal(err)
			}
			s, err := LoadSite(p, env(tc.env))
			if err != nil {
				t.Fatalf("LoadSite(%s) = %v", p, err)
			}
			if strings.Contains(s.Portal, "/") {
				t.Errorf("portal %q keeps a prefix length", s.Portal)
			}
			if s.Name != name || s.TwoTenants() != tc.twoTenants || s.NetNS != tc.netns || len(s.Nodes) < 2 ||
				fmt.Sprint(s.Capabilities) != "["+tc.caps+"]" {
				t.Errorf("LoadSite(%s) = %+v", p, s)
			}
			if s.Admin.Password.Reveal() != "a" || s.Operator.Password.Reveal() != "o" {
				t.Errorf("passwords not taken from the environment: %+v", s)
			}
		})
	}
}

func TestBadSiteConfigs(t *testing.T) {
	good, err := os.ReadFile("../configs/uat-example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	full := map[string]string{"BMI_UAT_ADMIN_PASSWORD": "a", "BMI_UAT_OPERATOR_PASSWORD": "o", "BMI_UAT_OTHER_PASSWORD": "x"}
	tests := map[string]struct {
		text string
		env  map[string]string
		want string
	}{
		"unknown key":      {text: string(good) + "colour: blue\n", env: full, want: "colour"},
		"missing password": {text: string(good), env: map[string]string{"BMI_UAT_ADMIN_PASSWORD": "a", "BMI_UAT_OTHER_PASSWORD": "x"}, want: "credentials.operator.password_env: environment variable BMI_UAT_OPERATOR_PASSWORD is not set"},
		"missing variable": {text: strings.Replace(string(good), "https://hil.example.org:5000", "${NO_SUCH_VAR}", 1), env: full, want: "hil_url: environment variable NO_SUCH_VAR"},
		"one node":         {text: strings.Replace(string(good), "  - name: node-02\n    nic: eth0\n", "", 1), env: full, want: "at least two nodes"},
		"not yaml":         {text: "name: [", env: full, want: "uat-bad.yaml"},
		"unknown capability": {text: strings.Replace(string(good), "capabilities: [two-tenants]", "capabilities: [two-tenants, lasers]", 1),
			env: full, want: `capabilities[1]: unknown capability "lasers"`},
		"capability without its keys": {text: strings.Replace(string(good), "capabilities: [two-tenants]", "capabilities: [hil-stop]", 1),
			env: full, want: "capability hil-stop needs hil_control"},
		"boots without an image": {text: strings.Replace(string(good), "capabilities: [two-tenants]", "capabilities: [boots]", 1),
			env: full, want: "capability boots needs boot_image"},
		"half a control": {text: strings.Replace(string(good), "hil_control:\n  stop: \"\"", "hil_control:\n  stop: \"true\"", 1),
			env: full, want: "hil_control: stop and start are both required"},
		"half the boot faults": {text: strings.Replace(string(good), "boot_faults:\n  on: \"\"", "boot_faults:\n  on: \"true\"", 1),
			env: full, want: "boot_faults: on and off are both required"},
		"boot faults without their commands": {text: strings.Replace(string(good), "capabilities: [two-tenants]", "capabilities: [boot-faults]", 1),
			env: full, want: "capability boot-faults needs capability boots and boot_faults"},
		"half a foothold": {text: strings.Replace(string(good), `  command: ""`, `  command: ssh attacker`, 1), env: full, want: "foothold.address: required when foothold is set"},
		"foothold bad url": {text: strings.NewReplacer(`  command: ""`, `  command: ssh x`, `  address: ""`, `  address: 10.1.1.66`,
			`  boot_url: ""`, `  boot_url: 10.1.1.1:8081`, `  portal: ""`, `  portal: 10.1.1.1:3260`).Replace(string(good)), env: full, want: "foothold.boot_url: \"10.1.1.1:8081\" is not an http URL"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "uat-bad.yaml")
			if err := os.WriteFile(p, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadSite(p, env(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) || !errors.Is(err, fault.ErrInvalid) {
				t.Fatalf("LoadSite = %v, want an invalid error naming %s and %q", err, p, tc.want)
			}
		})
	}
	if _, err := SitePath("nowhere", []string{"../configs"}); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("SitePath(nowhere) = %v, want not found", err)
	}
}

func TestFeaturesListed(t *testing.T) {
	fs, err := Features()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range fs {
		if f.Name == "" || len(f.Tags) == 0 {
			t.Errorf("feature %s: no name or tag", f.File)
		}
		n += len(f.Scenarios)
	}
	if len(fs) < 4 || n < 10 {
		t.Errorf("Features() = %d features, %d scenarios; want the shipped set", len(fs), n)
	}
	if _, err := featurePaths(features.FS, []string{"nope"}); err == nil {
		t.Error("featurePaths(nope) succeeded")
	}
}
