package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/bmi-go/bmi/service/api"
)

// Projects lists every project (admin).
func (c *Client) Projects(ctx context.Context) ([]api.Project, error) {
	var out []api.Project
	return out, c.get(ctx, "/projects", nil, &out)
}

// CreateProject creates a project (admin).
func (c *Client) CreateProject(ctx context.Context, name string) (api.Project, error) {
	var out api.Project
	_, _, err := c.do(ctx, http.MethodPost, "/projects", nil, api.CreateProjectRequest{Name: name}, &out)
	return out, err
}

// RemoveProject removes a project (admin); force removes what it owns.
func (c *Client) RemoveProject(ctx context.Context, name string, force bool) error {
	var q url.Values
	if force {
		q = url.Values{"force": {"true"}}
	}
	_, _, err := c.do(ctx, http.MethodDelete, "/projects/"+seg(name), q, nil, nil)
	return err
}

// Images lists a project's images.
func (c *Client) Images(ctx context.Context, project string) ([]api.Image, error) {
	var out []api.Image
	return out, c.get(ctx, "/projects/"+seg(project)+"/images", nil, &out)
}

// Image shows an image, snapshot or disk.
func (c *Client) Image(ctx context.Context, project, name string) (api.Image, error) {
	var out api.Image
	return out, c.get(ctx, "/projects/"+seg(project)+"/images/"+seg(name), nil, &out)
}

// RemoveImage removes an image, snapshot or disk.
func (c *Client) RemoveImage(ctx context.Context, project, name string) error {
	_, _, err := c.do(ctx, http.MethodDelete, "/projects/"+seg(project)+"/images/"+seg(name), nil, nil, nil)
	return err
}

// Import imports a Ceph image (admin). With async it returns at once with
// the operation id only; else with the image and the operation id.
func (c *Client) Import(ctx context.Context, project string, req api.ImportRequest, async bool) (api.Image, string, error) {
	var out api.Image
	op, _, err := c.do(ctx, http.MethodPost, "/projects/"+seg(project)+"/imports", waitQuery(async), req, &out)
	return out, op, err
}

// Copy copies an image (see Import for async).
func (c *Client) Copy(ctx context.Context, project, image string, req api.CopyRequest, async bool) (api.Image, string, error) {
	var out api.Image
	op, _, err := c.do(ctx, http.MethodPost, "/projects/"+seg(project)+"/images/"+seg(image)+"/copy", waitQuery(async), req, &out)
	return out, op, err
}

// Move moves and/or renames an image.
func (c *Client) Move(ctx context.Context, project, image string, req api.CopyRequest) (api.Image, error) {
	var out api.Image
	_, _, err := c.do(ctx, http.MethodPost, "/projects/"+seg(project)+"/images/"+seg(image)+"/move", nil, req, &out)
	return out, err
}

// Export copies an image to a new Ceph image outside BMI (admin); it
// returns the operation id.
func (c *Client) Export(ctx context.Context, project, image, dest string, async bool) (string, error) {
	op, _, err := c.do(ctx, http.MethodPost, "/projects/"+seg(project)+"/images/"+seg(image)+"/export", waitQuery(async), api.ExportRequest{Dest: dest}, nil)
	return op, err
}

// Snapshots lists a project's snapshots.
func (c *Client) Snapshots(ctx context.Context, project string) ([]api.Image, error) {
	var out []api.Image
	return out, c.get(ctx, "/projects/"+seg(project)+"/snapshots", nil, &out)
}

// CreateSnapshot snapshots a disk or the disk a node boots.
func (c *Client) CreateSnapshot(ctx context.Context, project string, req api.CreateSnapshotRequest, async bool) (api.Image, string, error) {
	var out api.Image
	op, _, err := c.do(ctx, http.MethodPost, "/projects/"+seg(project)+"/snapshots", waitQuery(async), req, &out)
	return out, op, err
}

// RemoveSnapshot removes a snapshot (and refuses anything else).
func (c *Client) RemoveSnapshot(ctx context.Context, project, name string) error {
	_, _, err := c.do(ctx, http.MethodDelete, "/projects/"+seg(project)+"/snapshots/"+seg(name), nil, nil, nil)
	return err
}

// Disks lists a project's disks.
func (c *Client) Disks(ctx context.Context, project string) ([]api.Disk, error) {
	var out []api.Disk
	return out, c.get(ctx, "/projects/"+seg(project)+"/disks", nil, &out)
}

// Disk shows a disk.
func (c *Client) Disk(ctx context.Context, project, name string) (api.Disk, error) {
	var out api.Disk
	return out, c.get(ctx, "/projects/"+seg(project)+"/disks/"+seg(name), nil, &out)
}

// CreateDisk clones an image into a new exported disk.
func (c *Client) CreateDisk(ctx context.Context, project string, req api.CreateDiskRequest, async bool) (api.Disk, string, error) {
	var out api.Disk
	op, _, err := c.do(ctx, http.MethodPost, "/projects/"+seg(project)+"/disks", waitQuery(async), req, &out)
	return out, op, err
}

// DeleteDisk unexports and removes a disk.
func (c *Client) DeleteDisk(ctx context.Context, project, name string) error {
	_, _, err := c.do(ctx, http.MethodDelete, "/projects/"+seg(project)+"/disks/"+seg(name), nil, nil, nil)
	return err
}

// Targets lists a project's iSCSI targets, or every target (admin) when
// project is "".
func (c *Client) Targets(ctx context.Context, project string) ([]api.TargetInfo, error) {
	var out []api.TargetInfo
	path := "/targets"
	if project != "" {
		path = "/projects/" + seg(project) + "/targets"
	}
	return out, c.get(ctx, path, nil, &out)
}

// ExportDisk (re-)exports a disk's target.
func (c *Client) ExportDisk(ctx context.Context, project, disk string) (api.Target, error) {
	var out api.Target
	_, _, err := c.do(ctx, http.MethodPut, "/projects/"+seg(project)+"/targets/"+seg(disk), nil, nil, &out)
	return out, err
}

// UnexportDisk stops exporting a disk.
func (c *Client) UnexportDisk(ctx context.Context, project, disk string) error {
	_, _, err := c.do(ctx, http.MethodDelete, "/projects/"+seg(project)+"/targets/"+seg(disk), nil, nil, nil)
	return err
}

// Boots lists a project's boot configs.
func (c *Client) Boots(ctx context.Context, project string) ([]api.BootConfig, error) {
	var out []api.BootConfig
	return out, c.get(ctx, "/projects/"+seg(project)+"/nodes", nil, &out)
}

// Boot shows a node's boot config.
func (c *Client) Boot(ctx context.Context, project, node string) (api.BootConfig, error) {
	var out api.BootConfig
	return out, c.get(ctx, "/projects/"+seg(project)+"/nodes/"+seg(node)+"/boot", nil, &out)
}

// SetBoot makes a node boot a disk.
func (c *Client) SetBoot(ctx context.Context, project, node string, req api.SetBootRequest) (api.BootConfig, error) {
	var out api.BootConfig
	_, _, err := c.do(ctx, http.MethodPut, "/projects/"+seg(project)+"/nodes/"+seg(node)+"/boot", nil, req, &out)
	return out, err
}

// ClearBoot stops a node from netbooting.
func (c *Client) ClearBoot(ctx context.Context, project, node string) error {
	_, _, err := c.do(ctx, http.MethodDelete, "/projects/"+seg(project)+"/nodes/"+seg(node)+"/boot", nil, nil, nil)
	return err
}

// Provision provisions a node.
func (c *Client) Provision(ctx context.Context, project, node string, req api.ProvisionRequest, async bool) (api.Disk, string, error) {
	var out api.Disk
	op, _, err := c.do(ctx, http.MethodPost, "/projects/"+seg(project)+"/nodes/"+seg(node)+"/provision", waitQuery(async), req, &out)
	return out, op, err
}

// Deprovision deprovisions a node; nic, when given, must be its boot NIC.
func (c *Client) Deprovision(ctx context.Context, project, node, nic string) error {
	return c.DeprovisionOn(ctx, project, node, "", nic)
}

// DeprovisionOn is Deprovision with the original's NETWORK argument: when
// not empty it must be the provisioning network BMI uses.
func (c *Client) DeprovisionOn(ctx context.Context, project, node, network, nic string) error {
	q := url.Values{}
	if nic != "" {
		q.Set("nic", nic)
	}
	if network != "" {
		q.Set("network", network)
	}
	_, _, err := c.do(ctx, http.MethodDelete, "/projects/"+seg(project)+"/nodes/"+seg(node)+"/provision", q, nil, nil)
	return err
}

// Sanboot returns what an external boot manager needs to sanboot a disk.
func (c *Client) Sanboot(ctx context.Context, project, disk string) (api.Sanboot, error) {
	var out api.Sanboot
	return out, c.get(ctx, "/projects/"+seg(project)+"/disks/"+seg(disk)+"/sanboot", nil, &out)
}

// NodeIP returns the address leased to a node's NIC.
func (c *Client) NodeIP(ctx context.Context, project, node, nic string) (api.NodeIP, error) {
	var out api.NodeIP
	return out, c.get(ctx, "/projects/"+seg(project)+"/nodes/"+seg(node)+"/ip", url.Values{"nic": {nic}}, &out)
}

// NodeTimeline returns what bmid saw of a node's boots, oldest first.
func (c *Client) NodeTimeline(ctx context.Context, project, node string) (api.NodeTimeline, error) {
	var out api.NodeTimeline
	return out, c.get(ctx, "/projects/"+seg(project)+"/nodes/"+seg(node)+"/timeline", nil, &out)
}

// Ops lists recent operations (admin); state "" means any.
func (c *Client) Ops(ctx context.Context, state string, limit int) ([]api.Operation, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out []api.Operation
	return out, c.get(ctx, "/operations", q, &out)
}

// Op returns an operation with its journal.
func (c *Client) Op(ctx context.Context, id string) (api.Operation, error) {
	var out api.Operation
	return out, c.get(ctx, "/operations/"+seg(id), nil, &out)
}

// DBFilter selects rows for DBImages; empty fields match everything.
type DBFilter struct {
	Project, Name, Ceph, Kind string
	Public                    *bool
}

// DBImages lists image rows of every project (admin).
func (c *Client) DBImages(ctx context.Context, f DBFilter) ([]api.Image, error) {
	q := url.Values{}
	for k, v := range map[string]string{"project": f.Project, "name": f.Name, "ceph": f.Ceph, "kind": f.Kind} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Public != nil {
		q.Set("public", fmt.Sprint(*f.Public))
	}
	var out []api.Image
	return out, c.get(ctx, "/db/images", q, &out)
}

// Reconcile runs a reconcile (admin).
func (c *Client) Reconcile(ctx context.Context, fix bool) (api.Report, error) {
	var out api.Report
	_, _, err := c.do(ctx, http.MethodPost, "/reconcile", nil, api.ReconcileRequest{Fix: fix}, &out)
	return out, err
}
