package steps

import (
	"fmt"
	"net/http"
	"time"

	"github.com/bmi-go/bmi/service/client"
	"github.com/bmi-go/bmi/service/hil"
	"github.com/bmi-go/bmi/service/logging"
)

// Credentials is one operator's HIL user name and password (BMI forwards
// them to HIL).
type Credentials struct {
	User     string
	Password logging.Secret
}

// Node is a machine the suite may provision: its HIL name and the NIC it
// boots from.
type Node struct {
	Name string
	NIC  string
}

// Site is everything the steps need to reach a BMI installation.
type Site struct {
	// Name names the site in reports ("local", "lab", ...).
	Name string
	// APIURL is bmid's URL (http://host:port).
	APIURL string
	// BootURL is a boot listener the tests may fetch scripts from as if
	// they were the node (/boot/<mac>.ipxe): only a bmid without the lease
	// and token checks serves them so. Empty: scripts are read through the
	// API (by node name as the operator, the secret as the administrator).
	BootURL string
	// HILURL is HIL's URL.
	HILURL string
	// Admin is a HIL administrator; Operator a member of Project; Other a
	// member of OtherProject only. Other and OtherProject are optional:
	// without them the @two-tenants scenarios cannot run.
	Admin, Operator, Other Credentials
	// Project is the operator's project; OtherProject another tenant's.
	Project, OtherProject string
	// Nodes are machines of Project the suite may provision (at least two).
	Nodes []Node
	// CephConf and Pool name the cluster BMI uses; the rbd CLI reads it.
	CephConf, Pool string
	// CephUser is the Ceph client id for rbd (empty: the default).
	CephUser string
	// Portal is the iSCSI portal (host:port) nodes log into.
	Portal string
	// NetNS, when set, is the network namespace the rbd and iSCSI
	// commands run in (ip netns exec), for sites whose Ceph and portal
	// are only reachable there (the lab).
	NetNS string
	// Capabilities are what the site can do (see Capability); scenarios
	// needing others are not run on it.
	Capabilities []Capability
	// Consoles is a directory of <node>.log serial consoles; empty on
	// sites without them.
	Consoles string
	// HILConsoles says the boot steps read the nodes' consoles through
	// HIL's console API (GET /v0/node/<node>/console) instead of
	// Consoles. Capability consoles needs one of the two.
	HILConsoles bool
	// BootImage is an image of Project that boots the lab's test OS
	// (prints BMI-LAB-STATE and BMI-LAB-BOOTED); needed by @boots.
	BootImage string
	// ProvisioningNetwork is the HIL network nodes netboot on; @boots
	// attaches a node's NIC to it before powering it on when BMI has not.
	ProvisioningNetwork string
	// BootTimeout bounds one boot to the marker (0: 5 minutes).
	BootTimeout time.Duration
	// StayUpImage is an image of Project that boots the lab's stay-up test
	// OS (it keeps verifying its disk: BMI-LAB-IO lines); needed by
	// @bmid-restart with BmidRestart.
	StayUpImage string
	// BmidRestart holds the shell commands that restart the site's bmid,
	// by way: RestartGraceful, RestartKill, RestartUpgrade. Each returns
	// once the new bmid serves. @bmid-restart needs all three.
	BmidRestart map[string]string
	// HILSwitch, when set, takes HIL down and back (capability
	// hil-stop); nil on sites that cannot.
	HILSwitch HILSwitch
	// CephSwitch, when set, takes Ceph down and back (capability
	// ceph-stop); nil on sites that cannot.
	CephSwitch CephSwitch
	// BootFaults, when set, turns faults on the boot path on and off
	// (capability boot-faults); nil on sites that cannot.
	BootFaults BootFaultSwitch
	// ImageMiB is the size of the RBD images the suite creates.
	ImageMiB int
	// Foothold, when set, is a machine on the provisioning network that
	// is no node (capability "foothold"): the @attacker scenarios run
	// their clients there.
	Foothold *Foothold
}

// Foothold is where an attacker's clients (curl, libiscsi's tools) run
// on the provisioning network, and bmid as seen from there.
type Foothold struct {
	// Command is the argv prefix that runs a program there ("ip netns
	// exec bmilab-x-fh", "ssh attacker@host").
	Command []string
	// Address is the foothold's own address (the source bmid records).
	Address string
	// BootURL is the boot listener it reaches (http://host:port).
	BootURL string
	// Portal is the iSCSI portal it reaches (host:port).
	Portal string
}

// TwoTenants says the site has a second tenant (capability two-tenants).
func (s *Site) TwoTenants() bool { return s.Can(CapTwoTenants) }

// command returns the argv that runs name with args on the site (inside
// NetNS when set).
func (s *Site) command(name string, args ...string) []string {
	if s.NetNS != "" {
		return append([]string{"ip", "netns", "exec", s.NetNS, name}, args...)
	}
	return append([]string{name}, args...)
}

// Client returns a bmi API client acting as who.
func (s *Site) Client(who Credentials) (*client.Client, error) {
	return client.New(s.APIURL, who.User, who.Password, client.WithHTTPClient(&http.Client{Timeout: 5 * time.Minute}))
}

// HIL returns a HIL client.
func (s *Site) HIL() *hil.Client {
	return hil.New(s.HILURL, &http.Client{Timeout: 30 * time.Second})
}

// hilCred converts credentials for the HIL client.
func hilCred(c Credentials) hil.Credentials {
	return hil.Credentials{User: c.User, Password: c.Password}
}

// Validate reports the first missing piece of a site.
func (s *Site) Validate() error {
	switch {
	case s.Name == "":
		return fmt.Errorf("site: name is empty")
	case s.APIURL == "":
		return fmt.Errorf("site %s: api url is empty", s.Name)
	case s.HILURL == "":
		return fmt.Errorf("site %s: hil url is empty", s.Name)
	case s.Admin.User == "" || s.Operator.User == "":
		return fmt.Errorf("site %s: the admin and operator credentials are needed", s.Name)
	case s.Project == "":
		return fmt.Errorf("site %s: project is empty", s.Name)
	case s.Project == s.OtherProject:
		return fmt.Errorf("site %s: project and other_project must differ", s.Name)
	case (s.OtherProject == "") != (s.Other.User == ""):
		return fmt.Errorf("site %s: other_project and the other tenant's credentials go together", s.Name)
	case len(s.Nodes) < 2:
		return fmt.Errorf("site %s: at least two nodes of project %s are needed", s.Name, s.Project)
	case s.CephConf == "" || s.Pool == "":
		return fmt.Errorf("site %s: ceph conf and pool are needed", s.Name)
	case s.Portal == "":
		return fmt.Errorf("site %s: the iscsi portal is empty", s.Name)
	}
	for i, n := range s.Nodes {
		if n.Name == "" || n.NIC == "" {
			return fmt.Errorf("site %s: node %d needs a name and a nic", s.Name, i+1)
		}
	}
	return s.validateCapabilities()
}
