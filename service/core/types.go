package core

import (
	"time"
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
	Node     string    `json:"node"`
	Project  string    `json:"project"`
	DiskID   int64     `json:"disk_id"`
	Disk     string    `json:"disk"`
	NIC      string    `json:"nic"`
	MAC      string    `json:"mac"`
	OwnsDisk bool      `json:"owns_disk"`
	Updated  time.Time `json:"updated"`
}

// Lease is a DHCP lease handed out by bmid.
type Lease struct {
	MAC      string    `json:"mac"`
	IP       string    `json:"ip"`
	Hostname string    `json:"hostname"`
	Expires  time.Time `json:"expires"`
}

// OpState is an operation's state.
type OpState string

// Operation states.
const (
	OpRunning    OpState = "running"
	OpDone       OpState = "done"
	OpFailed     OpState = "failed"
	OpRolledBack OpState = "rolled_back"
)

// Operation is a journaled multi-step operation.
type Operation struct {
	ID        string            `json:"id"`
	Kind      string            `json:"kind"`
	Project   string            `json:"project"`
	Target    string            `json:"target"`
	Principal string            `json:"principal"`
	State     OpState           `json:"state"`
	Data      map[string]string `json:"data"`
	Error     string            `json:"error,omitempty"`
	Progress  float64           `json:"progress"`
	Steps     []StepRecord      `json:"steps,omitempty"`
	Created   time.Time         `json:"created"`
	Updated   time.Time         `json:"updated"`
}

// StepState is the journal state of one step.
type StepState string

// Step states: a step is "doing" from just before it starts until it is
// "done"; a rollback marks it "undoing", then "undone".
const (
	StepDoing   StepState = "doing"
	StepDone    StepState = "done"
	StepUndoing StepState = "undoing"
	StepUndone  StepState = "undone"
)

// StepRecord is one journal entry.
type StepRecord struct {
	Seq   int       `json:"seq"`
	Name  string    `json:"name"`
	State StepState `json:"state"`
	At    time.Time `json:"at"`
}

// ImageFilter selects rows for admin listings (bmi db ls).
type ImageFilter struct {
	Project  string
	Name     string
	CephName string
	Kind     Kind
	Public   *bool
}
