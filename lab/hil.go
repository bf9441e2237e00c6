package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/bmi-go/bmi/lab/netns"
	"github.com/bmi-go/bmi/lab/vm"
	"github.com/bmi-go/bmi/service/hilmock"
)

// HIL names in the lab's inventory.
const (
	// HILAdmin is hil-mock's administrator.
	HILAdmin = "hiladmin"
	// HILBMIUser is the user bmid authenticates to HIL as.
	HILBMIUser = "bmi"
	// HILUser is the operator identity of the lab: member of Project.
	HILUser = "lab"
	// Project owns every lab node.
	Project = "lab"
	// OtherUser is a second tenant: member of OtherProject only (the
	// @two-tenants scenarios try to cross from it into Project).
	OtherUser = "lab-b"
	// OtherProject is the second tenant's project; it owns no node.
	OtherProject = "lab-b"
	// AdminProject is BMI's administrators' project (bmid's admin_project).
	AdminProject = "bmi_infra"
	// ProvisioningNetwork is the HIL network of the provisioning VLAN
	// (kept in hil-mock's inventory; with per-project networks bmid does
	// not use it).
	ProvisioningNetwork = "bmi-provision"
)

// ProjectNetwork is one of the lab's per-project provisioning networks:
// bmid gives one to each project that provisions a node and creates it in
// hil-mock; the lab makes its VLAN's bridge, with bmid's address on it.
type ProjectNetwork struct {
	Name string
	VLAN int
	// Addr is bmid's address on it; the pool is .100 to .199.
	Addr netip.Prefix
}

// FootholdAddr is the address of the lab's foothold (netns.AddFoothold)
// on the first of ProjectNetworks: the network the first project to
// provision gets (in the lab, project lab).
var FootholdAddr = netip.MustParsePrefix("10.77.10.66/24")

// ProjectNetworks are the lab's per-project provisioning networks (two:
// two tenants).
var ProjectNetworks = []ProjectNetwork{
	{Name: "bmi-prov-110", VLAN: 110, Addr: netip.MustParsePrefix("10.77.10.1/24")},
	{Name: "bmi-prov-111", VLAN: 111, Addr: netip.MustParsePrefix("10.77.11.1/24")},
}

// Credentials are the lab's generated passwords (credentials.json, 0600).
type Credentials struct {
	HILAdmin string `json:"hil_admin_password"`
	HILBMI   string `json:"hil_bmi_password"`
	HILUser  string `json:"hil_user_password"`
	// OtherUser is OtherUser's (added to a lab made before it existed).
	OtherUser string `json:"hil_other_user_password"`
}

// Credentials returns the lab's passwords, generating them on first use.
func (l *Lab) Credentials() (Credentials, error) {
	p := filepath.Join(l.Dir, "credentials.json")
	var c Credentials
	gen := func() string {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		return hex.EncodeToString(b)
	}
	if b, err := os.ReadFile(p); err == nil {
		if err := json.Unmarshal(b, &c); err != nil {
			return c, fmt.Errorf("lab %q: %s: %w", l.Name, p, err)
		}
		if c.OtherUser != "" {
			return c, nil
		}
		c.OtherUser = gen()
	} else if !errors.Is(err, os.ErrNotExist) {
		return c, err
	} else {
		c = Credentials{HILAdmin: gen(), HILBMI: gen(), HILUser: gen(), OtherUser: gen()}
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return c, err
	}
	return c, os.WriteFile(p, append(b, '\n'), 0o600)
}

// Inventory is hil-mock's inventory of the lab: its nodes (power address:
// the libvirt domain; NIC eth0 cabled to the node's tap), owned by Project;
// the provisioning network on the provisioning VLAN, open to every project;
// the administrator, BMI's user, the lab's operator user and a second
// tenant (OtherUser in OtherProject, which owns no node).
func (l *Lab) Inventory() (*hilmock.Inventory, error) {
	c, err := l.Credentials()
	if err != nil {
		return nil, err
	}
	inv := &hilmock.Inventory{
		VLANPool: hilmock.VLANRange{First: 1000, Last: 1099},
		Projects: []string{AdminProject, Project, OtherProject},
		Users: []hilmock.InventoryUser{
			{Name: HILAdmin, Password: c.HILAdmin, Admin: true},
			// BMI's account is a HIL administrator: it creates the
			// projects' provisioning networks on their VLANs.
			{Name: HILBMIUser, Password: c.HILBMI, Admin: true, Projects: []string{AdminProject, Project, OtherProject}},
			{Name: HILUser, Password: c.HILUser, Projects: []string{Project}},
			{Name: OtherUser, Password: c.OtherUser, Projects: []string{OtherProject}},
		},
		Networks: []hilmock.InventoryNet{{Name: ProvisioningNetwork, VLAN: l.ProvisioningVLAN, Owner: "admin"}},
	}
	for _, n := range l.Nodes {
		inv.Nodes = append(inv.Nodes, hilmock.InventoryNode{
			Name: n.Name, Project: Project, PowerAddress: n.Domain,
			NICs: []hilmock.InventoryNIC{{Label: "eth0", MAC: n.MAC, Port: n.Tap, Switch: l.Namespace}},
		})
	}
	return inv, nil
}

// NewHIL opens the lab's hil-mock (database hil-mock.db in the lab
// directory, seeded from Inventory with what it lacks) with the lab's drivers: power
// through the lab's libvirtd, switch ports on the lab's bridges, consoles
// from the machines' serial logs. The
// caller runs Serve and Close.
func (l *Lab) NewHIL(ctx context.Context, listen string, log *slog.Logger) (*hilmock.Server, error) {
	if len(l.Nodes) == 0 {
		return nil, fmt.Errorf("lab %q has no nodes: is it built?", l.Name)
	}
	inv, err := l.Inventory()
	if err != nil {
		return nil, err
	}
	power := vm.NewPowerDriver(vm.NewMachines(l.daemon.Socket(), log))
	sw := netns.NewSwitchDriver(l.net)
	// HIL's console API serves the machines' serial logs
	consoles := hilmock.FileConsoles{Path: func(n hilmock.Node) string {
		if node, err := l.Node(n.Name); err == nil {
			return node.Serial
		}
		return ""
	}}
	s, err := hilmock.New(ctx, filepath.Join(l.Dir, "hil-mock.db"), hilmock.Options{Listen: listen, Power: power, Switch: sw,
		Consoles: consoles, Logger: log})
	if err != nil {
		return nil, err
	}
	// Seeding adds only what is missing: nodes a later up added.
	if _, err := s.Seed(ctx, inv); err != nil {
		s.Close()
		return nil, fmt.Errorf("lab %q: seed hil-mock: %w", l.Name, err)
	}
	return s, nil
}
