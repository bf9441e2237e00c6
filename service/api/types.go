package api

import "time"

// Prefix is the path prefix of the JSON API.
const Prefix = "/api/v1"

// OperationHeader carries the id of the journaled operation a request ran,
// on synchronous answers of long operations.
const OperationHeader = "X-BMI-Operation"

// RequestIDHeader carries the request id the server logged the request with.
const RequestIDHeader = "X-Request-ID"

// Project is a BMI project (its name is the HIL project's).
type Project struct {
	ID      int64     `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
}

// Image is an image, snapshot or disk of a project.
type Image struct {
	ID       int64     `json:"id"`
	Project  string    `json:"project"`
	Name     string    `json:"name"`
	Kind     string    `json:"kind"`
	Parent   string    `json:"parent,omitempty"`
	CephName string    `json:"ceph_name"`
	Size     uint64    `json:"size"`
	Public   bool      `json:"public"`
	State    string    `json:"state"`
	OpID     string    `json:"op_id,omitempty"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
}

// Target is the iSCSI export of a disk. Portal, Port and LUN say where an
// initiator reaches it (in a disk's answer; not in target listings).
type Target struct {
	IQN        string    `json:"iqn"`
	Portal     string    `json:"portal,omitempty"`
	Port       int       `json:"port,omitempty"`
	LUN        int       `json:"lun"`
	CHAPUser   string    `json:"chap_user,omitempty"`
	Initiators []string  `json:"initiators,omitempty"`
	Created    time.Time `json:"created"`
}

// Disk is a disk with its export and the nodes that boot it.
type Disk struct {
	Image
	Target *Target  `json:"target,omitempty"`
	Nodes  []string `json:"nodes,omitempty"`
}

// TargetInfo is an export as the target listing shows it.
type TargetInfo struct {
	Target
	Project  string `json:"project"`
	Disk     string `json:"disk"`
	Exported bool   `json:"exported"`
}

// BootConfig says which disk a node boots.
type BootConfig struct {
	Node     string    `json:"node"`
	Project  string    `json:"project"`
	Disk     string    `json:"disk"`
	NIC      string    `json:"nic"`
	MAC      string    `json:"mac"`
	OwnsDisk bool      `json:"owns_disk"`
	Updated  time.Time `json:"updated"`
}

// Operation is a journaled multi-step operation.
type Operation struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Project   string    `json:"project"`
	Target    string    `json:"target"`
	Principal string    `json:"principal"`
	State     string    `json:"state"`
	Error     string    `json:"error,omitempty"`
	Progress  float64   `json:"progress"`
	Steps     []Step    `json:"steps,omitempty"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
}

// Operation states.
const (
	OpRunning    = "running"
	OpDone       = "done"
	OpFailed     = "failed"
	OpRolledBack = "rolled_back"
)

// Finished reports whether the operation has stopped (done, failed or
// rolled back).
func (o Operation) Finished() bool { return o.State != OpRunning && o.State != "" }

// Step is one entry of an operation's journal.
type Step struct {
	Seq   int       `json:"seq"`
	Name  string    `json:"name"`
	State string    `json:"state"`
	At    time.Time `json:"at"`
}

// Accepted is the 202 answer of a long operation asked for with wait=false:
// poll Href (GET) until the operation has finished.
type Accepted struct {
	Operation string `json:"operation"`
	Href      string `json:"href"`
}

// Report is what a reconcile found and fixed.
type Report struct {
	Recovered      int      `json:"recovered"`
	OrphanImages   []string `json:"orphan_images"`
	MissingImages  []string `json:"missing_images"`
	StrayTargets   []string `json:"stray_targets"`
	Reexported     []string `json:"reexported"`
	StrayBootFiles []string `json:"stray_boot_files"`
	// Left lists what is still there, each with why (not asked to fix,
	// not fixable by reconcile, or the error of its removal).
	Left   []string `json:"left"`
	Fixed  bool     `json:"fixed"`
	Errors []string `json:"errors,omitempty"`
}

// Sanboot is what an external boot manager needs to boot a node from a
// disk with its own iPXE script: `sanboot <URI>` with initiator-iqn set to
// one of Initiators (the disk's ACL) and, when the target requires CHAP,
// CHAPUser with the secret only an administrator reads (credentials).
type Sanboot struct {
	// URI is iPXE's iscsi:<portal>::<port>:<lun>:<iqn>.
	URI        string   `json:"uri"`
	Portal     string   `json:"portal"`
	Port       int      `json:"port"`
	LUN        int      `json:"lun"`
	IQN        string   `json:"iqn"`
	CHAPUser   string   `json:"chap_user"`
	Initiators []string `json:"initiators"`
}

// NodeTimeline is what bmid saw of a node's boots, oldest first: DHCP
// from the PXE ROM and from iPXE, the iPXE binary and script it fetched,
// and the iSCSI logins to its disk (iPXE's, then the booted OS's).
type NodeTimeline struct {
	Node    string          `json:"node"`
	Project string          `json:"project"`
	MAC     string          `json:"mac"`
	Events  []TimelineEvent `json:"events"`
}

// TimelineEvent is one step of a node's boot.
type TimelineEvent struct {
	At   time.Time `json:"at"`
	Step string    `json:"step"`
	// Client is who sent it: pxe-rom, ipxe or os ("" when unknown).
	Client string `json:"client,omitempty"`
	// Detail is a short note: offered address and boot file, file name,
	// why a login was refused. URL queries are removed.
	Detail string `json:"detail,omitempty"`
	// Remote, Initiator and Session (ISID) describe an iSCSI login.
	Remote    string `json:"remote,omitempty"`
	Initiator string `json:"initiator,omitempty"`
	Session   string `json:"session,omitempty"`
}

// NodeIP is the address bmid's DHCP server leased to a node's NIC.
type NodeIP struct {
	Node string `json:"node"`
	NIC  string `json:"nic"`
	IP   string `json:"ip"`
}
