package core

import (
	"context"
	"io"

	"github.com/bmi-go/bmi/service/logging"
)

// The state database as the core sees it, cut by what each part uses
// (service/store.DB implements them all; the journal is
// opjournal.Journal).

// Projects are BMI's projects.
type Projects interface {
	CreateProject(ctx context.Context, name string) (Project, error)
	Project(ctx context.Context, name string) (Project, error)
	Projects(ctx context.Context) ([]Project, error)
	DeleteProject(ctx context.Context, name string) error
}

// Rows are the image, snapshot and disk rows.
type Rows interface {
	InsertImage(ctx context.Context, im Image, uid string) (Image, error)
	Image(ctx context.Context, project, name string) (Image, error)
	ImageByID(ctx context.Context, id int64) (Image, error)
	Images(ctx context.Context, f ImageFilter) ([]Image, error)
	Children(ctx context.Context, id int64) ([]Image, error)
	SetImageState(ctx context.Context, id int64, st State, opID string) error
	SetImageSize(ctx context.Context, id int64, size uint64) error
	MoveImage(ctx context.Context, id int64, project, name string, detach bool) error
	DeleteImage(ctx context.Context, id int64) error
	CountImages(ctx context.Context, project string) (int, error)
}

// Targets are the disks' iSCSI target records.
type Targets interface {
	PutTarget(ctx context.Context, t Target) error
	Target(ctx context.Context, diskID int64) (Target, error)
	Targets(ctx context.Context) ([]Target, error)
	// ProjectTargets lists the exports of project's disks.
	ProjectTargets(ctx context.Context, project string) ([]Target, error)
	DeleteTarget(ctx context.Context, diskID int64) error
}

// Boots are the nodes' boot configs.
type Boots interface {
	PutBoot(ctx context.Context, b BootConfig) error
	Boot(ctx context.Context, node string) (BootConfig, error)
	BootByMAC(ctx context.Context, mac string) (BootConfig, error)
	Boots(ctx context.Context, project string, diskID int64) ([]BootConfig, error)
	// DiskBoots lists the boot configs of the nodes that boot one of
	// project's disks (whatever project the boot config is in).
	DiskBoots(ctx context.Context, project string) ([]BootConfig, error)
	DeleteBoot(ctx context.Context, node string) error
}

// Leases are the DHCP leases bmid handed out (node ip).
type Leases interface {
	LeaseByMAC(ctx context.Context, mac string) (Lease, error)
}

// Snapshot is an RBD snapshot as the core sees it.
type Snapshot struct {
	Name      string
	Protected bool
}

// Progress receives work done out of a total (units are the callee's).
type Progress = func(done, total uint64)

// Images is the RBD store as the core sees it (service/ceph.Store through
// the daemon's adapter). Errors carry fault kinds: a missing image or
// snapshot is ErrNotFound, a duplicate ErrExists, a busy or protected one
// ErrConflict, "not protected" ErrInvalid.
type Images interface {
	Size(ctx context.Context, name string) (uint64, error)
	// Parent returns the image@snap a clone was made from; "" for none.
	Parent(ctx context.Context, name string) (image, snap string, err error)
	Snapshots(ctx context.Context, name string) ([]Snapshot, error)
	List(ctx context.Context, prefix string) ([]string, error)
	Remove(ctx context.Context, name string) error
	Rename(ctx context.Context, from, to string) error
	CreateSnapshot(ctx context.Context, image, snap string) error
	ProtectSnapshot(ctx context.Context, image, snap string) error
	UnprotectSnapshot(ctx context.Context, image, snap string) error
	RemoveSnapshot(ctx context.Context, image, snap string) error
	Clone(ctx context.Context, parent, snap, child string) error
	Flatten(ctx context.Context, name string, progress Progress) error
	Import(ctx context.Context, name string, r io.Reader, size uint64, progress Progress) error
	Export(ctx context.Context, name string, w io.Writer, progress Progress) error
}

// ExportSpec says how to export a disk over iSCSI.
type ExportSpec struct {
	IQN        string
	CephName   string
	CHAPUser   string
	CHAPSecret logging.Secret
	Initiators []string
	// Size is the disk's size in bytes as the state records it (0 when it
	// does not): an exporter may then open the image at its first I/O
	// rather than at export.
	Size uint64
}

// Exporter is the iSCSI target as the core sees it. Export of an IQN that
// is already exported, and Unexport of one that is not, succeed.
type Exporter interface {
	Export(ctx context.Context, spec ExportSpec) error
	Unexport(ctx context.Context, iqn string) error
	Exported(ctx context.Context) ([]string, error)
}

// BootFile is what legacy file mode writes for a node.
type BootFile struct {
	Node   string
	MAC    string
	Disk   string
	IQN    string
	Target Target
}

// BootFiles writes and removes the pxelinux/iPXE files of legacy file mode
// (sites that keep their own dnsmasq). Both calls are idempotent.
type BootFiles interface {
	Write(ctx context.Context, f BootFile) error
	Remove(ctx context.Context, node, mac string) error
	Nodes(ctx context.Context) ([]string, error)
}

// Principal is who calls an operation: HIL credentials, forwarded to HIL.
type Principal struct {
	User     string
	Password logging.Secret
}

// Nodes is HIL as the core sees it.
type Nodes interface {
	// MAC returns the MAC address of a node's NIC, as the caller may see it.
	MAC(ctx context.Context, who Principal, node, nic string) (string, error)
}

// Networks changes HIL networks with BMI's own HIL account, not the
// caller's: recovery after a crash must be able to undo or finish a change
// without the caller's credentials (which are never journaled). Both calls
// wait until HIL has applied the change, and both are idempotent.
type Networks interface {
	ConnectNetwork(ctx context.Context, node, nic, network, channel string) error
	DetachNetwork(ctx context.Context, node, nic, network string) error
	// EnsureNetwork creates the HIL network of a project's provisioning
	// network (owned by BMI's account, open to project, on vlan) unless
	// it exists; DeleteNetwork removes it (a missing one is fine).
	EnsureNetwork(ctx context.Context, network, project string, vlan int) error
	DeleteNetwork(ctx context.Context, network string) error
}

// ProjectNets records which provisioning network each project was given
// (per-project provisioning networks).
type ProjectNets interface {
	ProjectNetwork(ctx context.Context, project string) (string, error)
	ClaimProjectNetwork(ctx context.Context, project string, candidates []string) (string, error)
	ReleaseProjectNetwork(ctx context.Context, project string) error
}

// Authorizer decides who may do what (HIL, through the daemon's adapter):
// Authenticate fails with ErrUnauthenticated, the others with ErrForbidden.
type Authorizer interface {
	Authenticate(ctx context.Context, who Principal) error
	IsAdmin(ctx context.Context, who Principal) (bool, error)
	ProjectAccess(ctx context.Context, who Principal, project string) error
}
