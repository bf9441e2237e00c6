package api

// CreateProjectRequest creates a project (POST /projects).
type CreateProjectRequest struct {
	Name string `json:"name"`
}

// ImportRequest imports a Ceph image of the pool (POST /projects/{p}/imports).
type ImportRequest struct {
	// Source is the Ceph image's name in the pool.
	Source string `json:"source"`
	// Name is the image's name in BMI; default: Source.
	Name string `json:"name,omitempty"`
	// Snap imports from an existing snapshot of Source.
	Snap string `json:"snap,omitempty"`
	// Protect protects Snap first.
	Protect bool `json:"protect,omitempty"`
}

// CopyRequest copies or moves an image to a project, optionally renaming it.
type CopyRequest struct {
	DestProject string `json:"dest_project"`
	Name        string `json:"name,omitempty"`
}

// ExportRequest copies an image to a new Ceph image outside BMI.
type ExportRequest struct {
	Dest string `json:"dest"`
}

// CreateSnapshotRequest snapshots a disk (or the disk a node boots).
type CreateSnapshotRequest struct {
	Disk string `json:"disk"`
	Name string `json:"name"`
}

// CreateDiskRequest clones an image into a new exported disk.
type CreateDiskRequest struct {
	Image string `json:"image"`
	Name  string `json:"name"`
}

// SetBootRequest makes a node boot a disk through one of its NICs.
type SetBootRequest struct {
	Disk string `json:"disk"`
	NIC  string `json:"nic"`
}

// ProvisionRequest clones an image into a disk named after the node,
// exports it and makes the node boot it.
type ProvisionRequest struct {
	Image string `json:"image"`
	NIC   string `json:"nic"`
	// Network is the original's NETWORK argument (optional): when given it
	// must be the provisioning network BMI uses, else the call fails
	// naming that network and nothing is done.
	Network string `json:"network,omitempty"`
}

// ReconcileRequest asks for a reconcile; Fix removes orphans and strays.
type ReconcileRequest struct {
	Fix bool `json:"fix"`
}
