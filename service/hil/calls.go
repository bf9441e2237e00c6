package hil

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/bmi-go/bmi/service/fault"
)

// Node is HIL's show_node answer.
type Node struct {
	Name string `json:"name"`
	// Project owning the node; empty for a free node.
	Project string `json:"project"`
	NICs    []NIC  `json:"nics"`
	// Metadata values are JSON text, as HIL stores them.
	Metadata map[string]string `json:"metadata"`
}

// NIC is one NIC of a node.
type NIC struct {
	Label string `json:"label"`
	MAC   string `json:"macaddr"`
	// Networks maps a channel ("vlan/native") to the network on it.
	Networks map[string]string `json:"networks"`
	// Port and Switch are shown to admins only.
	Port   string `json:"port,omitempty"`
	Switch string `json:"switch,omitempty"`
}

// NIC returns the node's NIC labelled label.
func (n Node) NIC(label string) (NIC, error) {
	for _, c := range n.NICs {
		if c.Label == label {
			return c, nil
		}
	}
	return NIC{}, fault.Errorf(fault.NotFound, "hil: node %q has no nic %q", n.Name, label)
}

// ShowNode is GET /v0/node/<node>.
func (c *Client) ShowNode(ctx context.Context, cred Credentials, node string) (Node, error) {
	var raw struct {
		Node
		Project *string `json:"project"`
	}
	err := c.do(ctx, cred, "show node "+quote(node), http.MethodGet, "/node/"+p(node), nil, &raw)
	if err != nil {
		return Node{}, err
	}
	n := raw.Node
	if raw.Project != nil {
		n.Project = *raw.Project
	}
	return n, nil
}

// ListProjectNodes is GET /v0/project/<project>/nodes.
func (c *Client) ListProjectNodes(ctx context.Context, cred Credentials, project string) ([]string, error) {
	var names []string
	err := c.do(ctx, cred, "list nodes of project "+quote(project), http.MethodGet, "/project/"+p(project)+"/nodes", nil, &names)
	return names, err
}

// ListFreeNodes is GET /v0/nodes/free.
func (c *Client) ListFreeNodes(ctx context.Context, cred Credentials) ([]string, error) {
	var names []string
	err := c.do(ctx, cred, "list free nodes", http.MethodGet, "/nodes/free", nil, &names)
	return names, err
}

// Network is HIL's show_network answer.
type Network struct {
	Name string `json:"name"`
	// Owner is "admin" or a project.
	Owner string `json:"owner"`
	// Access lists the projects that may use it; empty: public.
	Access []string `json:"access"`
	// Channels are the legal channels, e.g. "vlan/native", "vlan/201".
	Channels []string `json:"channels"`
	// ConnectedNodes maps a node to its NICs on the network (those the
	// caller may see).
	ConnectedNodes map[string][]string `json:"connected-nodes"`
}

// VLAN returns the network's VLAN id, read from its "vlan/<id>" channel.
func (n Network) VLAN() (string, bool) {
	for _, ch := range n.Channels {
		if id, ok := strings.CutPrefix(ch, "vlan/"); ok && id != "native" {
			return id, true
		}
	}
	return "", false
}

// ShowNetwork is GET /v0/network/<network>.
func (c *Client) ShowNetwork(ctx context.Context, cred Credentials, network string) (Network, error) {
	var n Network
	err := c.do(ctx, cred, "show network "+quote(network), http.MethodGet, "/network/"+p(network), nil, &n)
	return n, err
}

// PowerCycle is POST /v0/node/<node>/power_cycle: HIL sets the next boot
// device to PXE and resets the node (force: hard reset), powering it on if
// it is off.
func (c *Client) PowerCycle(ctx context.Context, cred Credentials, node string, force bool) error {
	return c.do(ctx, cred, "power cycle node "+quote(node), http.MethodPost, "/node/"+p(node)+"/power_cycle",
		map[string]bool{"force": force}, nil)
}

// PowerOff is POST /v0/node/<node>/power_off.
func (c *Client) PowerOff(ctx context.Context, cred Credentials, node string) error {
	return c.do(ctx, cred, "power off node "+quote(node), http.MethodPost, "/node/"+p(node)+"/power_off", nil, nil)
}

// PowerOn is POST /v0/node/<node>/power_on (HIL HEAD).
func (c *Client) PowerOn(ctx context.Context, cred Credentials, node string) error {
	return c.do(ctx, cred, "power on node "+quote(node), http.MethodPost, "/node/"+p(node)+"/power_on", nil, nil)
}

// PowerStatus is GET /v0/node/<node>/power_status; it returns "on" or "off".
func (c *Client) PowerStatus(ctx context.Context, cred Credentials, node string) (string, error) {
	op := "power status of node " + quote(node)
	var out struct {
		PowerStatus string `json:"power_status"`
	}
	if err := c.do(ctx, cred, op, http.MethodGet, "/node/"+p(node)+"/power_status", nil, &out); err != nil {
		return "", err
	}
	s := strings.ToLower(out.PowerStatus)
	switch {
	case s == "on" || strings.HasSuffix(s, " on"):
		return "on", nil
	case s == "off" || strings.HasSuffix(s, " off"):
		return "off", nil
	}
	return "", fault.Errorf(fault.Internal, "hil: %s: unexpected power_status %q", op, out.PowerStatus)
}

// Boot devices SetBootDevice accepts.
var bootDevices = []string{"pxe", "disk", "none"}

// SetBootDevice is PUT /v0/node/<node>/boot_device {"bootdev"}: pxe, disk
// or none.
func (c *Client) SetBootDevice(ctx context.Context, cred Credentials, node, dev string) error {
	op := "set boot device of node " + quote(node) + " to " + quote(dev)
	if !slices.Contains(bootDevices, dev) {
		return fault.Errorf(fault.Invalid, "hil: %s: want pxe, disk or none", op)
	}
	return c.do(ctx, cred, op, http.MethodPut, "/node/"+p(node)+"/boot_device", map[string]string{"bootdev": dev}, nil)
}

// Authenticate checks that HIL accepts the credentials (see probe): nil,
// or fault.ErrUnauthenticated if they are refused, or fault.ErrUnavailable
// if HIL cannot be reached.
func (c *Client) Authenticate(ctx context.Context, cred Credentials) error {
	return c.probe(ctx, cred)
}

// IsAdmin reports whether the credentials are a HIL admin's, by an
// admin-only call that every HIL version and auth backend has (GET
// /v0/projects): 200 yes; 401 no, if the credentials authenticate at all
// (otherwise fault.ErrUnauthenticated).
func (c *Client) IsAdmin(ctx context.Context, cred Credentials) (bool, error) {
	err := c.do(ctx, cred, "check admin rights of user "+quote(cred.User), http.MethodGet, "/projects", nil, nil)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fault.ErrForbidden) {
		return false, nil
	}
	return false, err
}

// CheckProjectAccess returns nil if the credentials may use project (a
// member, or an admin), by the probe the original BMI used: GET
// /v0/project/<p>/nodes. Otherwise fault.ErrForbidden (no access),
// fault.ErrUnauthenticated (credentials refused) or fault.ErrNotFound (no
// such project).
func (c *Client) CheckProjectAccess(ctx context.Context, cred Credentials, project string) error {
	return c.do(ctx, cred, "check access of user "+quote(cred.User)+" to project "+quote(project),
		http.MethodGet, "/project/"+p(project)+"/nodes", nil, nil)
}

// CreateNetwork is PUT /v0/network/<network> {"owner", "access", "net_id"}:
// owner "admin" (an administrator's call) or a project; access "" (public)
// or one project; netID the VLAN id, or "" for HIL to allocate one.
func (c *Client) CreateNetwork(ctx context.Context, cred Credentials, network, owner, access, netID string) error {
	return c.do(ctx, cred, "create network "+quote(network), http.MethodPut, "/network/"+p(network),
		map[string]string{"owner": owner, "access": access, "net_id": netID}, nil)
}

// DeleteNetwork is DELETE /v0/network/<network>; HIL refuses (conflict)
// while NICs are on it.
func (c *Client) DeleteNetwork(ctx context.Context, cred Credentials, network string) error {
	return c.do(ctx, cred, "delete network "+quote(network), http.MethodDelete, "/network/"+p(network), nil, nil)
}
