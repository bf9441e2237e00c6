package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/lab/netns"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/hilmock"
	"github.com/bmi-go/bmi/service/logging"
)

func requireLab(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t)
	for cmd, pkg := range Commands {
		testenv.RequireCommand(t, cmd, pkg)
	}
}

func TestBuildStatusDown(t *testing.T) {
	requireLab(t)
	ctx := context.Background()
	log := logging.Discard()
	dir := filepath.Join(t.TempDir(), "lab")
	stale, err := New("tlab", dir, log)
	if err != nil {
		t.Fatal(err)
	}
	_ = stale.Down(ctx, false)
	l, err := Build(ctx, Options{Name: "tlab", Dir: dir, Nodes: 2}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Down(context.Background(), false) })
	// Idempotent: a second Build resumes and changes nothing.
	if _, err := Build(ctx, Options{Name: "tlab", Dir: dir, Nodes: 2}, log); err != nil {
		t.Fatalf("second Build: %v", err)
	}
	st, err := l.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Namespace || !st.HostLink || st.Libvirtd == 0 || st.Virtlogd == 0 || len(st.Machines) != 2 || len(st.Ports) != 2 {
		t.Fatalf("status of a built lab: %+v", st)
	}
	// The same name from another directory is busy while this lab exists.
	if _, err := Build(ctx, Options{Name: "tlab", Dir: filepath.Join(t.TempDir(), "other"), Nodes: 1}, log); !errors.Is(err, fault.ErrConflict) ||
		!strings.Contains(err.Error(), "bmi-lab down") {
		t.Fatalf("busy name: %v, want ErrConflict saying what to do", err)
	}
	// The recorded state reopens.
	again, err := New("tlab", dir, log)
	if err != nil || len(again.Nodes) != 2 || again.Nodes[1].Name != "node-02" {
		t.Fatalf("reopen: %v, %+v", err, again)
	}
	if _, err := New("other", dir, log); !errors.Is(err, fault.ErrConflict) {
		t.Fatalf("another lab name in the same directory: %v, want ErrConflict", err)
	}
	// Connect node-01 through the switch driver; nodes shows it.
	n1, _ := l.Node("node-01")
	sw := netns.NewSwitchDriver(l.Net())
	if err := sw.Connect(ctx, hilmock.NIC{Node: n1.Name, Label: "eth0", MAC: n1.MAC, Port: n1.Tap}, l.ProvisioningVLAN, "vlan/native"); err != nil {
		t.Fatal(err)
	}
	rows, err := l.NodeStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Power != "off" || rows[0].VLAN != l.ProvisioningVLAN || rows[1].VLAN != 0 || rows[0].MAC == rows[1].MAC {
		t.Fatalf("nodes: %+v", rows)
	}
	if env := strings.Join(l.ExportLines(), "\n"); !strings.Contains(env, "export BMI_LAB_ADDR="+l.LabAddr) {
		t.Fatalf("env lacks the lab address:\n%s", env)
	}

	if err := l.Down(ctx, false); err != nil {
		t.Fatal(err)
	}
	st, err = l.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Empty() {
		t.Fatalf("after Down: %+v", st)
	}
	if _, err := os.Stat(filepath.Join(dir, "lab.json")); !os.IsNotExist(err) {
		t.Fatalf("lab.json left: %v", err)
	}
	if err := l.Down(ctx, false); err != nil {
		t.Fatalf("Down of a removed lab: %v", err)
	}
}

func TestBuildRefusesBadInput(t *testing.T) {
	log := logging.Discard()
	tests := map[string]struct {
		o    Options
		kind error
	}{
		"no nodes":             {Options{Name: "tbad", Nodes: 0}, fault.ErrInvalid},
		"too many nodes":       {Options{Name: "tbad", Nodes: 65}, fault.ErrInvalid},
		"tiny memory":          {Options{Name: "tbad", Nodes: 1, MemoryMiB: 64}, fault.ErrInvalid},
		"bad name":             {Options{Name: "Bad/Name", Nodes: 1}, fault.ErrInvalid},
		"more uefi than nodes": {Options{Name: "tbad", Nodes: 2, UEFI: 2, UEFIHTTP: 1}, fault.ErrInvalid},
		"negative uefi":        {Options{Name: "tbad", Nodes: 2, UEFI: -1}, fault.ErrInvalid},
		"unknown firmware":     {Options{Name: "tbad", Nodes: 2, Firmware: map[string]string{"node-01": "coreboot"}}, fault.ErrInvalid},
		"firmware of no node":  {Options{Name: "tbad", Nodes: 2, Firmware: map[string]string{"node-03": "uefi"}}, fault.ErrInvalid},
		"firmware of node-1":   {Options{Name: "tbad", Nodes: 2, Firmware: map[string]string{"node-1": "uefi"}}, fault.ErrInvalid},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tc.o.Dir = t.TempDir()
			if _, err := Build(context.Background(), tc.o, log); !errors.Is(err, tc.kind) {
				t.Fatalf("got %v, want %v", err, tc.kind)
			}
		})
	}
}

func TestFirmwareOfNodes(t *testing.T) {
	tests := map[string]struct {
		o        Options
		recorded map[string]string
		want     []string
	}{
		"all bios":         {Options{Nodes: 2}, nil, []string{"bios", "bios"}},
		"last two uefi":    {Options{Nodes: 4, UEFI: 2}, nil, []string{"bios", "bios", "uefi", "uefi"}},
		"pxe then http":    {Options{Nodes: 4, UEFI: 1, UEFIHTTP: 2}, nil, []string{"bios", "uefi", "uefi-http", "uefi-http"}},
		"all uefi":         {Options{Nodes: 2, UEFI: 2}, nil, []string{"uefi", "uefi"}},
		"per node wins":    {Options{Nodes: 3, UEFI: 1, Firmware: map[string]string{"node-03": "bios", "node-01": "uefi-http"}}, nil, []string{"uefi-http", "bios", "bios"}},
		"recorded kept":    {Options{Nodes: 3}, map[string]string{"node-02": "uefi-http"}, []string{"bios", "uefi-http", "bios"}},
		"counts override":  {Options{Nodes: 2, UEFI: 1}, map[string]string{"node-01": "uefi-http"}, []string{"bios", "uefi"}},
		"per node, record": {Options{Nodes: 2, Firmware: map[string]string{"node-01": "uefi"}}, map[string]string{"node-02": "uefi-http"}, []string{"uefi", "uefi-http"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if err := tc.o.validFirmware(); err != nil {
				t.Fatal(err)
			}
			var got []string
			for i := 1; i <= tc.o.Nodes; i++ {
				n := fmt.Sprintf("node-%02d", i)
				got = append(got, tc.o.firmware(i, n, tc.recorded[n]))
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
