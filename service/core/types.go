package core

import (
	"time"

	"github.com/bmi-go/bmi/service/opjournal"
)

// Kind says what an image row is.
type Kind string

// Image kinds.
const (
	// KindImage is a golden, imported, copied or uploaded image: nodes boot
	// clones of it.
	KindImage Kind = "image"
	// KindSnapshot is a flattened copy of a node's disk; it is an image too.
	KindSnapshot Kind = "snapshot"
	// KindDisk is a per-node copy-on-write clone exported over iSCSI.
	KindDisk Kind = "disk"
)

// State is the lifecycle state of an image row.
type State string

// Image states.
const (
	// StatePending: an operation is creating it; it is not usable yet.
	StatePending State = "pending"
	// StateReady: complete and usable.
	StateReady State = "ready"
	// StateDeleting: an operation is removing it.
	StateDeleting State = "deleting"
)

// Project is a BMI project; its name is the HIL project's.
type Project struct {
	ID      int64     `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
}

// Image is an image, snapshot or disk row.
type Image struct {
	ID       int64     `json:"id"`
	Project  string    `json:"project"`
	Name     string    `json:"name"`
	Kind     Kind      `json:"kind"`
	ParentID int64     `json:"parent_id,omitempty"`
	Parent   string    `json:"parent,omitempty"`
	CephName string    `json:"ceph_name"`
	Size     uint64    `json:"size"`
	Public   bool      `json:"public"`
	State    State     `json:"state"`
	OpID     string    `json:"op_id,omitempty"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
}

// Target is the iSCSI export of a disk.
type Target struct {
	DiskID     int64     `json:"disk_id"`
	IQN        string    `json:"iqn"`
	CHAPUser   string    `json:"chap_user"`
	CHAPSecret string    `json:"-"`
	Initiators []string  `json:"initiators"`
	Created    time.Time `json:"created"`
}

// BootConfig says which disk a node boots.
type BootConfig struct {
	Node    string `json:"node"`
	Project string `json:"project"`
	DiskID  int64  `json:"disk_id"`
	Disk    string `json:"disk"`
	NIC     string `json:"nic"`
	MAC     string `json:"mac"`
	// OwnsDisk: the node boots the disk pro made for it (DiskID is
	// OwnedDiskID); derived by the store.
	OwnsDisk bool `json:"owns_disk"`
	// OwnedDiskID is the disk pro made for the node, which dpro deletes
	// whatever disk the node boots then (0: none, or it was deleted).
	OwnedDiskID int64 `json:"owned_disk_id,omitempty"`
	// Attached: BMI attached the node's NIC to the provisioning network
	// (pro, or set-boot), so dpro and clear-boot detach it.
	Attached bool      `json:"attached,omitempty"`
	Updated  time.Time `json:"updated"`
}

// Lease is a DHCP lease handed out by bmid.
type Lease struct {
	MAC      string    `json:"mac"`
	IP       string    `json:"ip"`
	Hostname string    `json:"hostname"`
	Expires  time.Time `json:"expires"`
}

// OpState is an operation's state (see opjournal).
type OpState = opjournal.State

// Operation states.
const (
	OpRunning    = opjournal.Running
	OpDone       = opjournal.Done
	OpFailed     = opjournal.Failed
	OpRolledBack = opjournal.RolledBack
)

// Operation is a journaled multi-step operation.
type Operation = opjournal.Record

// StepState is the journal state of one step.
type StepState = opjournal.StepState

// Step states: a step is "doing" from just before it starts until it is
// "done"; a rollback marks it "undoing", then "undone".
const (
	StepDoing   = opjournal.StepDoing
	StepDone    = opjournal.StepDone
	StepUndoing = opjournal.StepUndoing
	StepUndone  = opjournal.StepUndone
)

// StepRecord is one journal entry.
type StepRecord = opjournal.StepRecord

// ImageFilter selects rows for admin listings (bmi db ls).
type ImageFilter struct {
	Project  string
	Name     string
	CephName string
	Kind     Kind
	Public   *bool
}
