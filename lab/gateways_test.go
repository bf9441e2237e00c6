package lab

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/service/config"
)

func twoGatewayLab(t *testing.T) *Lab {
	return &Lab{State: State{Name: "gwt", Dir: t.TempDir(), Namespace: "bmilab-gwt", ProvisioningVLAN: 100,
		Bridge4: "10.77.0.1/24", LabAddr: "169.254.10.2", Gateways: 2}}
}

// TestGatewayConfigValid: a several-gateway lab's bmid.yaml passes bmid's
// own validation: a gateway on the lab's PostgreSQL with a short lease,
// its own portal on each network, the group's portal the provisioning
// network's floating address, iSCSI on any address, its API on the
// storage network.
func TestGatewayConfigValid(t *testing.T) {
	l := twoGatewayLab(t)
	data := bmidConfigData(l.LabAddr, l.Dir, "10.77.0.1", filepath.Join(l.Dir, "pw"), filepath.Join(l.Dir, "ceph.conf"),
		filepath.Join(l.Dir, "keyring"), "rbd", "http://169.254.10.2:5000")
	l.gatewayConfigData(data, 2)
	var b bytes.Buffer
	if err := bmidConfig.Execute(&b, data); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(l.Dir, "bmid-g2.yaml")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.Sources{File: path})
	if err != nil {
		t.Fatalf("a gateway's bmid.yaml does not validate: %v\n%s", err, b.String())
	}
	want := []string{"10.77.0.22:3260", "10.77.10.22:3260", "10.77.11.22:3260"}
	if cfg.Gateway.ID != "g2" || cfg.Gateway.Group != GatewayGroup || cfg.Gateway.Lease != GatewayLease ||
		!slices.Equal(cfg.Gateway.Addresses, want) || cfg.State.Engine != "postgres" || !strings.Contains(cfg.State.DSN, "bmi-lab-gwt-pg") {
		t.Fatalf("gateway config: %+v, state %+v", cfg.Gateway, cfg.State)
	}
	if cfg.ISCSI.Portal != "10.77.0.1:3260" || !slices.Equal(cfg.ISCSI.Listen, []string{"0.0.0.0:3260"}) || cfg.API.Listen != "10.77.250.12:8080" {
		t.Fatalf("gateway config: portal %s, listen %v, api %s", cfg.ISCSI.Portal, cfg.ISCSI.Listen, cfg.API.Listen)
	}
}

// TestKeepalivedConf: each gateway's keepalived holds the group's
// floating addresses (gateway 1 first) and each gateway's own addresses
// (that gateway first), on every network, tracking its bmid's /healthz;
// keepalived itself accepts the file when it is installed.
func TestKeepalivedConf(t *testing.T) {
	l := twoGatewayLab(t)
	for i, want := range map[int][]string{
		1: {"vrrp_instance group {", "priority 200", "10.77.10.1/24 dev vlan110", "10.77.0.21/24 dev vlan100",
			"10.77.11.22/24 dev vlan111", "unicast_src_ip 10.77.250.11", "    10.77.250.12\n", "http://10.77.250.11:8080/healthz"},
		2: {"unicast_src_ip 10.77.250.12", "    10.77.250.11\n", "http://10.77.250.12:8080/healthz"},
	} {
		conf := l.keepalivedConf(i)
		for _, w := range want {
			if !strings.Contains(conf, w) {
				t.Fatalf("gateway %d's keepalived.conf lacks %q:\n%s", i, w, conf)
			}
		}
		// Its own instance first, the other's second.
		own := conf[strings.Index(conf, "vrrp_instance own_g"+string(rune('0'+i))):]
		if !strings.Contains(own[:strings.Index(own, "}")], "priority 200") {
			t.Fatalf("gateway %d is not first for its own addresses:\n%s", i, conf)
		}
		if kp, err := exec.LookPath("keepalived"); err == nil {
			path := filepath.Join(l.Dir, "k.conf")
			if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
				t.Fatal(err)
			}
			// The gateways' interfaces exist only in their namespaces:
			// that is the one complaint allowed here.
			out, err := exec.Command(kp, "--config-test", "--use-file", path).CombinedOutput()
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if line != "" && !strings.Contains(line, "doesn't exist") && !strings.Contains(line, "Non-existent interface") {
					t.Fatalf("keepalived --config-test: %v: %s\n%s\n%s", err, line, out, conf)
				}
			}
		}
	}
}
