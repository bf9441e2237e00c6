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
// validation, with the API on the management link only and the boot
// scripts on the provisioning bridge's own listener.
func TestBmidConfigValid(t *testing.T) {
	dir := t.TempDir()
	var b bytes.Buffer
	err := bmidConfig.Execute(&b, map[string]any{
		"HILUser": HILBMIUser, "HILPasswordFile": filepath.Join(dir, "pw"),
		"AdminProject": AdminProject, "APIPort": APIPort, "BootPort": BootPort, "LabAddr": "169.254.10.2", "Dir": dir,
		"CephConf": filepath.Join(dir, "ceph.conf"), "CephID": BmidCephUser, "Keyring": filepath.Join(dir, "keyring"), "Pool": "rbd",
		"HILURL": "http://169.254.10.2:5000", "ProvNet": ProvisioningNetwork,
		"BridgeAddr": "10.77.0.1", "Bridge": "vlan100", "RangeStart": "10.77.0.100", "RangeEnd": "10.77.0.199",
		"Netmask": "255.255.255.0",
	})
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
	if !strings.HasPrefix(cfg.API.Listen, "169.254.10.2:") || cfg.Boot.HTTPListen != "10.77.0.1:8081" ||
		!cfg.Boot.IPXE.RequireLease || !cfg.Boot.IPXE.ScriptToken || cfg.Ceph.ID != "bmid" {
		t.Fatalf("lab config: api %s, boot http %s, lease %v, token %v, ceph id %s", cfg.API.Listen, cfg.Boot.HTTPListen,
			cfg.Boot.IPXE.RequireLease, cfg.Boot.IPXE.ScriptToken, cfg.Ceph.ID)
	}
}
