package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/bmi-go/bmi/lab/netns"
	"github.com/bmi-go/bmi/lab/vm"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/hilmock"
)

// Driver names of a drivers file (configs/hil-mock-drivers.example.yaml).
const (
	driverRecord    = "record"
	driverLibvirt   = "libvirt"
	driverLabBridge = "lab-bridge"
	driverNone      = "none"
	driverFiles     = "files"
)

// nodePlaceholder is replaced by a node's HIL name in consoles.path.
const nodePlaceholder = "{node}"

// driversFile is the YAML of `hil-mock serve --drivers FILE`: how hil-mock
// reaches the machines it stands in for HIL for.
type driversFile struct {
	Power struct {
		Driver        string `yaml:"driver"`
		LibvirtSocket string `yaml:"libvirt_socket"`
	} `yaml:"power"`
	Switch struct {
		Driver     string `yaml:"driver"`
		LabNetwork string `yaml:"lab_network"`
	} `yaml:"switch"`
	Consoles struct {
		Driver string `yaml:"driver"`
		Path   string `yaml:"path"`
	} `yaml:"consoles"`
}

// drivers are the drivers a drivers file names (nil: hil-mock's default).
type drivers struct {
	power    hilmock.PowerDriver
	sw       hilmock.SwitchDriver
	consoles hilmock.ConsoleDriver
	close    func() error
}

// readDrivers reads and checks a drivers file; every error names the file
// and the key. Nothing is connected yet (libvirtd is dialled on first use).
func readDrivers(path string, log *slog.Logger) (drivers, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return drivers{}, fmt.Errorf("drivers file: %w", err)
	}
	var f driversFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return drivers{}, fmt.Errorf("drivers file %s: %v: %w", path, err, fault.ErrInvalid)
	}
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("drivers file %s: %s: %s: %w", path, key, fmt.Sprintf(format, args...), fault.ErrInvalid)
	}
	d := drivers{close: func() error { return nil }}
	switch f.Power.Driver {
	case "", driverRecord:
		if f.Power.LibvirtSocket != "" {
			return drivers{}, bad("power.libvirt_socket", "only with driver %s", driverLibvirt)
		}
	case driverLibvirt:
		if f.Power.LibvirtSocket == "" {
			return drivers{}, bad("power.libvirt_socket", "driver %s needs the libvirtd socket", driverLibvirt)
		}
		m := vm.NewMachines(f.Power.LibvirtSocket, log)
		d.power, d.close = vm.NewPowerDriver(m), m.Close
	default:
		return drivers{}, bad("power.driver", "%q: want %s or %s", f.Power.Driver, driverRecord, driverLibvirt)
	}
	switch f.Switch.Driver {
	case "", driverRecord:
		if f.Switch.LabNetwork != "" {
			return drivers{}, bad("switch.lab_network", "only with driver %s", driverLabBridge)
		}
	case driverLabBridge:
		n, err := netns.New(netns.Config{Name: f.Switch.LabNetwork}, log)
		if err != nil {
			return drivers{}, bad("switch.lab_network", "%v", err)
		}
		d.sw = netns.NewSwitchDriver(n)
	default:
		return drivers{}, bad("switch.driver", "%q: want %s or %s", f.Switch.Driver, driverRecord, driverLabBridge)
	}
	switch f.Consoles.Driver {
	case "", driverNone:
		if f.Consoles.Path != "" {
			return drivers{}, bad("consoles.path", "only with driver %s", driverFiles)
		}
	case driverFiles:
		p := f.Consoles.Path
		if !strings.Contains(p, nodePlaceholder) || !strings.HasPrefix(p, "/") {
			return drivers{}, bad("consoles.path", "%q: want an absolute path with %s in it", p, nodePlaceholder)
		}
		d.consoles = hilmock.FileConsoles{Path: func(n hilmock.Node) string { return strings.ReplaceAll(p, nodePlaceholder, n.Name) }}
	default:
		return drivers{}, bad("consoles.driver", "%q: want %s or %s", f.Consoles.Driver, driverNone, driverFiles)
	}
	if d.power != nil && d.sw == nil {
		// hil-mock would use the power driver as switch driver if it were
		// one; keep the default (recorded) explicit instead.
		d.sw = &hilmock.Recorder{}
	}
	return d, nil
}
