package config

import (
	"strings"
	"testing"
)

// netBase is a valid per-project-networks configuration; cases add to it
// or replace a line of it.
const netBase = minimal + `  user: bmi
  password_file: /etc/bmi/hil.pw
api:
  listen: 10.0.0.1:8080
iscsi:
  listen: ["0.0.0.0:3260"]
boot:
  http_listen: ":8081"
  networks:
    - name: bmi-prov-101
      vlan: 101
      interface: eth1.101
      address: 10.20.101.1/24
      range_start: 10.20.101.100
      range_end: 10.20.101.199
    - name: bmi-prov-102
      vlan: 102
      interface: eth1.102
      address: 10.20.102.1/24
      range_start: 10.20.102.100
      range_end: 10.20.102.199
`

func TestNetworks(t *testing.T) {
	cfg, err := Load(Sources{File: writeFile(t, netBase)})
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	if n := cfg.Boot.Networks; len(n) != 2 || n[1].VLAN != 102 || n[1].Interface != "eth1.102" || n[0].RangeEnd != "10.20.101.199" {
		t.Fatalf("networks = %+v", n)
	}
	tests := map[string]struct {
		from, to string // replace from with to in netBase
		want     string
	}{
		"unknown key in an item":   {"      vlan: 101\n", "      vlan: 101\n      vlna: 3\n", `key "boot.networks": invalid list: field vlna not found`},
		"scalar for the list":      {"  networks:\n", "  networks: eth1\n  xnetworks:\n", `key "boot.networks": want a list of mappings with keys name, vlan`},
		"missing name":             {"    - name: bmi-prov-101\n", "    - name: \"\"\n", `key "boot.networks[0].name": required`},
		"bad vlan":                 {"vlan: 102", "vlan: 5000", `key "boot.networks[1].vlan": must be between 1 and 4094`},
		"same vlan":                {"vlan: 102", "vlan: 101", `key "boot.networks[1].vlan": vlan 101 is also boot.networks[0]'s`},
		"same name":                {"name: bmi-prov-102", "name: bmi-prov-101", `key "boot.networks[1].name": name bmi-prov-101 is also`},
		"same interface":           {"interface: eth1.102", "interface: eth1.101", `key "boot.networks[1].interface": interface eth1.101 is also`},
		"no prefix length":         {"address: 10.20.102.1/24", "address: 10.20.102.1", `key "boot.networks[1].address": invalid value "10.20.102.1": want this host's IPv4 address with a prefix length`},
		"overlapping subnets":      {"address: 10.20.102.1/24", "address: 10.20.101.2/16", `key "boot.networks[1].address": subnet 10.20.0.0/16 overlaps boot.networks[0]'s 10.20.101.0/24`},
		"range outside subnet":     {"range_end: 10.20.102.199", "range_end: 10.20.103.199", `key "boot.networks[1].range_start": range 10.20.102.100-10.20.103.199 must lie in 10.20.102.0/24`},
		"range holds the host":     {"range_start: 10.20.102.100", "range_start: 10.20.102.1", `leave out this host's address 10.20.102.1`},
		"range backwards":          {"range_end: 10.20.102.199", "range_end: 10.20.102.50", `key "boot.networks[1].range_end": 10.20.102.50 comes before range_start`},
		"portal not listening":     {`listen: ["0.0.0.0:3260"]`, `listen: ["10.20.101.1:3260"]`, `key "boot.networks[1].address": the iSCSI target does not listen on 10.20.102.1:3260`},
		"shared keys set too":      {"  http_listen:", "  interfaces: [eth1]\n  http_listen:", `key "boot.interfaces": must be empty when boot.networks is set`},
		"shared network set too":   {"  user: bmi\n", "  user: bmi\n  provisioning_network: prov\n", `key "hil.provisioning_network": must be empty when boot.networks is set`},
		"no hil account":           {"  user: bmi\n  password_file: /etc/bmi/hil.pw\n", "", `key "hil.user": required when boot.networks is set`},
		"no boot http":             {`  http_listen: ":8081"` + "\n", "", `key "boot.http_listen": required when boot.networks is set`},
		"wildcard api":             {"listen: 10.0.0.1:8080", "listen: 0.0.0.0:8080", `key "api.listen": "0.0.0.0:8080" is a wildcard address`},
		"a router for all":         {"  http_listen:", "  dhcp:\n    router: 10.20.101.254\n  http_listen:", `key "boot.dhcp.router": must be empty when boot.networks is set`},
		"proxy mode":               {"  http_listen:", "  dhcp:\n    mode: proxy\n  http_listen:", `key "boot.dhcp.mode": must be server when boot.networks is set`},
		"legacy range set as well": {"  http_listen:", "  dhcp:\n    range_start: 10.1.1.1\n  http_listen:", `key "boot.dhcp.range_start": must be empty when boot.networks is set`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(netBase, tc.from) {
				t.Fatalf("netBase has no %q", tc.from)
			}
			body := strings.Replace(netBase, tc.from, tc.to, 1)
			_, err := Load(Sources{File: writeFile(t, body)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load = %v, want an error containing %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}
