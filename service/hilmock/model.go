package hilmock

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
)

// principal is the authenticated caller of one request.
type principal struct {
	name     string
	admin    bool
	projects []string
}

// hasProjectAccess is HIL's have_project_access: admins always; others if
// they are members of project ("" meaning no project: admins only).
func (p *principal) hasProjectAccess(project string) bool {
	return p.admin || (project != "" && slices.Contains(p.projects, project))
}

func (p *principal) requireProjectAccess(project string) error {
	if !p.hasProjectAccess(project) {
		if project == "" {
			return unauthorized("this operation requires admin rights")
		}
		return unauthorized("user %s does not have access to project %s", p.name, project)
	}
	return nil
}

func (p *principal) requireAdmin() error {
	if !p.admin {
		return unauthorized("this operation requires admin rights")
	}
	return nil
}

// nodeRow is a node as stored.
type nodeRow struct {
	name, project, powerAddress string
	nics                        []nicRow
	metadata                    map[string]string // label → JSON text
}

type nicRow struct {
	node, label, mac, port, sw string
	networks                   map[string]string // channel → network
}

// driverNode converts a stored node to what a PowerDriver sees.
func (n *nodeRow) driverNode() Node {
	d := Node{Name: n.name, PowerAddress: n.powerAddress}
	d.Hardware.CPUs = metaInt(n.metadata["cpus"])
	d.Hardware.MemoryMiB = metaInt(n.metadata["memory_mib"])
	d.Hardware.LocalDiskGiB = metaInt(n.metadata["local_disk_gib"])
	for _, c := range n.nics {
		d.NICs = append(d.NICs, c.driverNIC())
	}
	return d
}

func (c *nicRow) driverNIC() NIC {
	return NIC{Node: c.node, Label: c.label, MAC: c.mac, Port: c.port}
}

// metaInt reads an integer metadata value (JSON number or string).
func metaInt(js string) int {
	var v any
	if json.Unmarshal([]byte(js), &v) != nil {
		return 0
	}
	switch x := v.(type) {
	case float64:
		return int(x)
	case string:
		n, _ := strconv.Atoi(x)
		return n
	}
	return 0
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func exists(ctx context.Context, q querier, query string, args ...any) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, query, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func projectExists(ctx context.Context, q querier, name string) (bool, error) {
	return exists(ctx, q, "SELECT 1 FROM projects WHERE name = ?", name)
}

func mustFindProject(ctx context.Context, q querier, name string) error {
	ok, err := projectExists(ctx, q, name)
	if err != nil {
		return err
	}
	if !ok {
		return notFound("Project %s does not exist.", name)
	}
	return nil
}

// loadNode returns the node, its NICs with their attachments and its
// metadata, or a NotFoundError.
func loadNode(ctx context.Context, q querier, name string) (*nodeRow, error) {
	n := &nodeRow{name: name, metadata: map[string]string{}}
	var project sql.NullString
	err := q.QueryRowContext(ctx, "SELECT project, power_address FROM nodes WHERE name = ?", name).Scan(&project, &n.powerAddress)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("Node %s does not exist.", name)
	}
	if err != nil {
		return nil, err
	}
	n.project = project.String
	rows, err := q.QueryContext(ctx, "SELECT label, macaddr, port, switch FROM nics WHERE node = ? ORDER BY label", name)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		c := nicRow{node: name, networks: map[string]string{}}
		if err := rows.Scan(&c.label, &c.mac, &c.port, &c.sw); err != nil {
			rows.Close()
			return nil, err
		}
		n.nics = append(n.nics, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = q.QueryContext(ctx, "SELECT nic, channel, network FROM attachments WHERE node = ?", name)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var nic, ch, net string
		if err := rows.Scan(&nic, &ch, &net); err != nil {
			rows.Close()
			return nil, err
		}
		for i := range n.nics {
			if n.nics[i].label == nic {
				n.nics[i].networks[ch] = net
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = q.QueryContext(ctx, "SELECT label, value FROM node_metadata WHERE node = ?", name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var l, v string
		if err := rows.Scan(&l, &v); err != nil {
			return nil, err
		}
		n.metadata[l] = v
	}
	return n, rows.Err()
}

func (n *nodeRow) nic(label string) (*nicRow, error) {
	for i := range n.nics {
		if n.nics[i].label == label {
			return &n.nics[i], nil
		}
	}
	return nil, notFound("Nic %s on Node %s does not exist.", label, n.name)
}

// networkRow is a network as stored.
type networkRow struct {
	name, owner string // owner "" = admin
	vlan        int
	allocated   bool
	access      []string // empty: public
}

func loadNetwork(ctx context.Context, q querier, name string) (*networkRow, error) {
	nw := &networkRow{name: name}
	var owner sql.NullString
	err := q.QueryRowContext(ctx, "SELECT owner, vlan, allocated FROM networks WHERE name = ?", name).Scan(&owner, &nw.vlan, &nw.allocated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("Network %s does not exist.", name)
	}
	if err != nil {
		return nil, err
	}
	nw.owner = owner.String
	nw.access, err = column(ctx, q, "SELECT project FROM network_access WHERE network = ? ORDER BY project", name)
	return nw, err
}

// channels are the legal channels of the network (HIL's vlan_pool allocator).
func (nw *networkRow) channels() []string {
	return []string{"vlan/native", "vlan/" + strconv.Itoa(nw.vlan)}
}

// column returns the first column of every row.
func column(ctx context.Context, q querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// pendingAction returns the id of the NIC's pending action, if any.
func pendingAction(ctx context.Context, q querier, node, nic string) (bool, error) {
	return exists(ctx, q, "SELECT 1 FROM actions WHERE node = ? AND nic = ? AND status = 'PENDING'", node, nic)
}
