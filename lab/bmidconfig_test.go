package lab

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/service/config"
)

// TestBmidConfigValid: the bmid.yaml `up` writes passes bmid's own
// validation, with the API on the management link only, the boot
// scripts on the provisioning networks' own listeners, and a provisioning
// network per project.
func TestBmidConfigValid(t *testing.T) {
	dir := t.TempDir()
	var b bytes.Buffer
	err := bmidConfig.Execute(&b, bmidConfigData("169.254.10.2", dir, "10.77.0.1", filepath.Join(dir, "pw"), filepath.Join(dir, "ceph.conf"),
		filepath.Join(dir, "keyring"), "rbd", "http://169.254.10.2:5000"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "bmid.yaml")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.Sources{File: path})
	if err != nil {
		t.Fatalf("the lab's bmid.yaml does not validate: %v\n%s", err, b.String())
	}
	if n := cfg.Boot.Networks; len(n) != 2 || n[1].Interface != "vlan111" || n[1].Address != "10.77.11.1/24" || n[1].RangeStart != "10.77.11.100" ||
		cfg.HIL.ProvisioningNetwork != "" {
		t.Fatalf("lab config: per-project networks %+v, shared network %q", n, cfg.HIL.ProvisioningNetwork)
	}
	if !strings.HasPrefix(cfg.API.Listen, "169.254.10.2:") || cfg.Boot.HTTPListen != "10.77.0.1:8081" ||
		!cfg.Boot.IPXE.RequireLease || !cfg.Boot.IPXE.ScriptToken || cfg.Ceph.ID != "bmid" {
		t.Fatalf("lab config: api %s, boot http %s, lease %v, token %v, ceph id %s", cfg.API.Listen, cfg.Boot.HTTPListen,
			cfg.Boot.IPXE.RequireLease, cfg.Boot.IPXE.ScriptToken, cfg.Ceph.ID)
	}
}
