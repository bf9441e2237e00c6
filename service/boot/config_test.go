package boot

import (
	"strings"
	"testing"

	"github.com/bmi-go/bmi/service/config"
)

// TestBootConfigKeys loads the boot keys this issue added through
// config.Load (as --set flags) and checks that bad values name their key.
func TestBootConfigKeys(t *testing.T) {
	base := []string{"uid=site1", "hil.url=http://127.0.0.1:5000"}
	good := append(base, "boot.faults.dhcp.drop_percent=5", "boot.faults.http.delay=200ms",
		"boot.ipxe.attempts=2", "boot.ipxe.retry_delay=1s", "boot.ipxe.no_config_pause=0s",
		"boot.dhcp.server_ip=10.0.0.1", "boot.dhcp.ipv6_ra=false", "boot.tftp.preload=ipxe.efi,snponly.efi",
		"boot.files.ipxe_interface=net2", "boot.ipxe.require_lease=true", "boot.ipxe.template_dir=/etc/bmi/ipxe")
	c, err := config.Load(config.Sources{Sets: good})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	b := c.Boot
	if FaultsFromConfig(b.Faults.DHCP).DropRate != 0.05 || b.Faults.HTTP.Delay.String() != "200ms" || b.IPXE.Attempts != 2 ||
		b.DHCP.IPv6RA || len(b.TFTP.Preload) != 2 || b.Files.IPXEInterface != "net2" || !b.IPXE.RequireLease {
		t.Fatalf("loaded boot section: %+v", b)
	}
	bad := map[string]string{
		"boot.faults.dhcp.drop_percent": "101",
		"boot.faults.tftp.drop_percent": "-1",
		"boot.faults.http.delay":        "-1s",
		"boot.ipxe.attempts":            "0",
		"boot.ipxe.retry_delay":         "1500ms",
		"boot.ipxe.reboot_delay":        "2h",
		"boot.dhcp.server_ip":           "fd00::1",
		"boot.files.ipxe_interface":     "net 2",
	}
	for key, val := range bad {
		t.Run(key, func(t *testing.T) {
			_, err := config.Load(config.Sources{Sets: append(append([]string{}, base...), key+"="+val)})
			if err == nil || !strings.Contains(err.Error(), key) {
				t.Fatalf("Load with %s=%s = %v, want an error naming the key", key, val, err)
			}
		})
	}
}
