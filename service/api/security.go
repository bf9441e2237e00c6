package api

import "time"

// ACL is the initiator ACL of a disk's iSCSI target: the initiator names
// that may discover it and log in to it.
type ACL struct {
	// Project and Disk name the disk.
	Project string `json:"project"`
	Disk    string `json:"disk"`
	// IQN is the target's name.
	IQN string `json:"iqn"`
	// Initiators are the names added through the API.
	Initiators []string `json:"initiators"`
	// Nodes are the names BMI adds by itself: those of the nodes whose
	// boot config boots the disk.
	Nodes []string `json:"nodes"`
	// Effective is what the target enforces: Initiators and Nodes.
	Effective []string `json:"effective"`
}

// ACLChange adds and removes initiator names of an ACL.
type ACLChange struct {
	// Add and Remove are initiator IQNs.
	Add    []string `json:"add,omitempty"`
	Remove []string `json:"remove,omitempty"`
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`
	Actor   string    `json:"actor"`
	Source  string    `json:"source"`
	Action  string    `json:"action"`
	Object  string    `json:"object"`
	Outcome string    `json:"outcome"`
	Detail  string    `json:"detail,omitempty"`
}

// AuditQuery selects audit entries (all fields optional).
type AuditQuery struct {
	Kind   string
	Actor  string
	Source string
	Limit  int
}

// Credentials are what a node logs in to its disk with: only an
// administrator gets them, and only by asking for them (and the asking is
// audited).
type Credentials struct {
	// IQN is the target's name.
	IQN string `json:"iqn"`
	// CHAPUser and CHAPSecret are the CHAP credentials.
	CHAPUser   string `json:"chap_user"`
	CHAPSecret string `json:"chap_secret"`
	// Initiators are the names the target's ACL lets in.
	Initiators []string `json:"initiators"`
}
