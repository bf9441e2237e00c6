package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/lab/netns"
	"github.com/bmi-go/bmi/lab/vm"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/hilmock"
	"github.com/bmi-go/bmi/service/logging"
)

func TestReadDrivers(t *testing.T) {
	d, err := readDrivers("../../configs/hil-mock-drivers.example.yaml", logging.Discard())
	if err != nil {
		t.Fatalf("the shipped example: %v", err)
	}
	if _, ok := d.power.(*vm.PowerDriver); !ok {
		t.Errorf("power driver %T, want libvirt's", d.power)
	}
	if _, ok := d.sw.(*netns.SwitchDriver); !ok {
		t.Errorf("switch driver %T, want the lab bridge's", d.sw)
	}
	fc, ok := d.consoles.(hilmock.FileConsoles)
	if !ok {
		t.Fatalf("console driver %T, want files", d.consoles)
	}
	if p := fc.Path(hilmock.Node{Name: "node-07"}); p != "/var/lib/bmi-lab/lab/consoles/node-07.log" {
		t.Errorf("console of node-07: %s", p)
	}
	if err := d.close(); err != nil {
		t.Error(err)
	}

	for _, tc := range []struct {
		name, yaml, key string // key: the error names it; "" means valid
	}{
		{"empty file: defaults", "", ""},
		{"record everything", "power: {driver: record}\nswitch: {driver: record}\nconsoles: {driver: none}\n", ""},
		{"libvirt power only", "power: {driver: libvirt, libvirt_socket: /run/x.sock}\n", ""},
		{"unknown key", "power: {driver: record}\ncolour: blue\n", "colour"},
		{"unknown driver", "power: {driver: ipmi}\n", "power.driver"},
		{"libvirt without socket", "power: {driver: libvirt}\n", "power.libvirt_socket"},
		{"socket without libvirt", "power: {libvirt_socket: /run/x.sock}\n", "power.libvirt_socket"},
		{"bad lab name", "switch: {driver: lab-bridge, lab_network: 'a b'}\n", "switch.lab_network"},
		{"lab bridge without a network", "switch: {driver: lab-bridge}\n", "switch.lab_network"},
		{"unknown switch", "switch: {driver: cisco}\n", "switch.driver"},
		{"console path without {node}", "consoles: {driver: files, path: /var/log/console.log}\n", "consoles.path"},
		{"relative console path", "consoles: {driver: files, path: 'logs/{node}.log'}\n", "consoles.path"},
		{"console path without files", "consoles: {path: '/l/{node}.log'}\n", "consoles.path"},
		{"unknown console driver", "consoles: {driver: ipmi-sol}\n", "consoles.driver"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "drivers.yaml")
			if err := os.WriteFile(p, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			d, err := readDrivers(p, logging.Discard())
			if tc.key == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				if d.power != nil && d.sw == nil {
					t.Error("a power driver without a switch driver")
				}
				_ = d.close()
				return
			}
			if err == nil || !errors.Is(err, fault.ErrInvalid) || !strings.Contains(err.Error(), tc.key) || !strings.Contains(err.Error(), p) {
				t.Fatalf("want an invalid-input error naming %s and the file, got %v", tc.key, err)
			}
		})
	}
}
