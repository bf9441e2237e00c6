//go:build ceph_preview

package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/apiserver"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/hil"
	"github.com/bmi-go/bmi/service/iscsi"
	"github.com/bmi-go/bmi/service/store"
)

// security keeps the iSCSI initiator ACLs and the audit log, and serves
// both to the API.
//
// A disk's effective ACL is the names added through the API plus the
// initiator name of every node whose boot config boots the disk (the name
// its boot script sets); it is applied to the target after every export
// and every change of boot configs or ACLs. An empty ACL lets no one in.
type security struct {
	// script renders a node's boot script (with its secret) from its boot
	// config (set by the daemon once the boot specs exist).
	script func(bc core.BootConfig, t core.Target) ([]byte, error)
	svc    *core.Service
	db     *store.DB
	target *iscsi.Target
	prefix string // iscsi.iqn_prefix
	uid    string
	log    *slog.Logger
	// started is set once Start's exports are done (startedUp).
	started atomic.Bool
	// syncMu serialises sync: each applies what it read, so the last to
	// apply a target's ACL has read its latest state.
	syncMu sync.Mutex
}

var _ apiserver.Security = (*security)(nil)

func (s *security) nodeIQN(node string) string { return iscsi.NodeInitiator(s.prefix, s.uid, node) }

// nodes returns the initiator names of the nodes that boot t's disk.
func (s *security) nodes(ctx context.Context, t core.Target) ([]string, error) {
	boots, err := s.db.Boots(ctx, "", t.DiskID)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, b := range boots {
		out = append(out, s.nodeIQN(b.Node))
	}
	return out, nil
}

func union(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

// exported applies the ACLs after an export, except during start-up: Run
// sweeps once after Start has exported every disk.
func (s *security) exported(ctx context.Context, iqn string) {
	if s.started.Load() {
		s.sync(ctx, iqn)
	}
}

// startedUp ends start-up: from now on each export applies the ACLs.
func (s *security) startedUp() { s.started.Store(true) }

// syncAll applies the effective ACL of every exported target.
func (s *security) syncAll(ctx context.Context) { s.sync(ctx, "") }

// sync applies the effective ACL of the exported target iqn ("": of
// every one): an export applies its own only, so that exporting n disks
// (a take-over, a burst of provisions) costs n, not n².
func (s *security) sync(ctx context.Context, iqn string) {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	var ts []core.Target
	var err error
	if iqn == "" {
		ts, err = s.db.Targets(ctx)
	} else {
		var t core.Target
		t, err = s.db.TargetByIQN(ctx, iqn)
		ts = []core.Target{t}
	}
	if errorsIsNotFound(err) {
		return // unexported meanwhile: nothing to apply
	}
	if err != nil {
		s.log.Warn("initiator ACLs not applied", "iqn", iqn, "err", err)
		return
	}
	for _, t := range ts {
		nodes, err := s.nodes(ctx, t)
		if err != nil {
			s.log.Warn("initiator ACL not applied", "iqn", t.IQN, "err", err)
			continue
		}
		err = s.target.SetInitiators(ctx, t.IQN, union(t.Initiators, nodes))
		if err != nil && !errorsIsNotFound(err) {
			s.log.Warn("initiator ACL not applied", "iqn", t.IQN, "err", err)
		}
	}
}

func errorsIsNotFound(err error) bool { return fault.Of(err) == fault.NotFound }

// find returns the target of project's disk, checking who is a member.
func (s *security) find(ctx context.Context, who core.Principal, project, disk string) (core.TargetInfo, error) {
	infos, err := s.svc.ListTargets(ctx, who, project)
	if err != nil {
		return core.TargetInfo{}, err
	}
	for _, ti := range infos {
		if ti.Disk == disk {
			return ti, nil
		}
	}
	return core.TargetInfo{}, fault.Errorf(fault.NotFound, "disk %q of project %q has no iSCSI target", disk, project)
}

func (s *security) aclOf(ctx context.Context, project, disk string, t core.Target) (api.ACL, error) {
	nodes, err := s.nodes(ctx, t)
	if err != nil {
		return api.ACL{}, err
	}
	inits := union(t.Initiators, nil)
	return api.ACL{Project: project, Disk: disk, IQN: t.IQN, Initiators: inits, Nodes: nodes, Effective: union(inits, nodes)}, nil
}

// ACL implements apiserver.Security.
func (s *security) ACL(ctx context.Context, who core.Principal, project, disk string) (api.ACL, error) {
	ti, err := s.find(ctx, who, project, disk)
	if err != nil {
		return api.ACL{}, err
	}
	return s.aclOf(ctx, project, disk, ti.Target)
}

// ChangeACL implements apiserver.Security.
func (s *security) ChangeACL(ctx context.Context, who core.Principal, project, disk string, ch api.ACLChange) (api.ACL, error) {
	ti, err := s.find(ctx, who, project, disk)
	if err != nil {
		return api.ACL{}, err
	}
	for _, n := range ch.Add {
		if !iscsi.ValidIQN(n) {
			return api.ACL{}, fault.Errorf(fault.Invalid, "initiator name %.80q is not a valid iqn. name", n)
		}
	}
	// One transaction changes the row, and only this target's ACL is
	// applied from it: a read-modify-write of the whole row, then every
	// target's ACL applied from a read of all of them, let concurrent
	// changes of two disks undo each other in the target (an initiator
	// just added refused at login, one just removed let in).
	t, err := s.db.ChangeInitiators(ctx, ti.DiskID, ch.Add, ch.Remove)
	if err != nil {
		return api.ACL{}, err
	}
	s.sync(ctx, t.IQN)
	return s.aclOf(ctx, project, disk, t)
}

// Audit implements apiserver.Security: administrators only (listing every
// project's targets is the core's admin check).
func (s *security) Audit(ctx context.Context, who core.Principal, q api.AuditQuery) ([]api.AuditEntry, error) {
	if _, err := s.svc.ListTargets(ctx, who, ""); err != nil {
		return nil, err
	}
	es, err := s.db.Audit(ctx, store.AuditFilter{Kind: q.Kind, Actor: q.Actor, Source: q.Source, Limit: q.Limit})
	if err != nil {
		return nil, err
	}
	out := make([]api.AuditEntry, 0, len(es))
	for _, e := range es {
		out = append(out, api.AuditEntry{ID: e.ID, At: e.At, Kind: e.Kind, Actor: e.Actor, Source: e.Source,
			Action: e.Action, Object: e.Object, Outcome: e.Outcome, Detail: e.Detail})
	}
	return out, nil
}

// Record implements apiserver.Security: one structured log line and one
// row per entry.
func (s *security) Record(ctx context.Context, e api.AuditEntry) {
	s.log.Info("audit", "kind", e.Kind, "actor", e.Actor, "remote", e.Source, "action", e.Action,
		"object", e.Object, "outcome", e.Outcome, "detail", e.Detail)
	if err := s.db.AppendAudit(ctx, store.AuditEntry{Kind: e.Kind, Actor: e.Actor, Source: e.Source, Action: e.Action,
		Object: e.Object, Outcome: e.Outcome, Detail: e.Detail}); err != nil {
		s.log.Error("audit entry not stored", "err", err)
	}
}

// aclOps is the core with the ACLs kept in step: after every operation
// that changes which disk a node boots or what is exported.
type aclOps struct {
	*core.Service
	sec *security
	hil *hil.Client
	// placed is the exporter across gateways (nil: not a gateway): a
	// disk another gateway exports has its ACL applied there.
	placed *placedExporter
}

// remoteACL has the gateway that exports the disk of target t apply its
// ACL now, when that is another gateway; a failure is logged (its
// periodic sweep applies it within aclInterval).
func (o aclOps) remoteACL(ctx context.Context, t *core.Target) {
	if o.placed == nil || t == nil {
		return
	}
	if err := o.placed.applyACL(ctx, t.IQN); err != nil {
		o.sec.log.Warn("initiator ACL not applied by the disk's gateway yet", "iqn", t.IQN, "err", err)
	}
}

// CreateProject creates a project only if HIL has one of that name (BMI's
// projects mirror HIL's).
func (o aclOps) CreateProject(ctx context.Context, who core.Principal, name string) (core.Project, error) {
	if err := core.ValidateName("project name", name); err != nil {
		return core.Project{}, err
	}
	err := o.hil.CheckProjectAccess(ctx, creds(who), name)
	switch fault.Of(err) {
	case "":
	case fault.NotFound:
		return core.Project{}, fault.Errorf(fault.Invalid, "HIL has no project %q: create it in HIL first", name)
	default:
		return core.Project{}, err
	}
	return o.Service.CreateProject(ctx, who, name)
}

func (o aclOps) ExportDisk(ctx context.Context, who core.Principal, project, disk string) (core.Target, error) {
	t, err := o.Service.ExportDisk(ctx, who, project, disk)
	o.sec.syncAll(ctx)
	return t, err
}

func (o aclOps) SetBoot(ctx context.Context, who core.Principal, project, node, nic, disk string) (core.BootConfig, error) {
	b, err := o.Service.SetBoot(ctx, who, project, node, nic, disk)
	o.sec.syncAll(ctx)
	if err == nil && o.placed != nil {
		if ti, ferr := o.sec.find(ctx, who, project, disk); ferr == nil {
			o.remoteACL(ctx, &ti.Target)
		}
	}
	return b, err
}

func (o aclOps) ClearBoot(ctx context.Context, who core.Principal, project, node string) error {
	err := o.Service.ClearBoot(ctx, who, project, node)
	o.sec.syncAll(ctx)
	return err
}

func (o aclOps) Provision(ctx context.Context, who core.Principal, project, node, image, nic string) (core.DiskInfo, error) {
	d, err := o.Service.Provision(ctx, who, project, node, image, nic)
	o.sec.syncAll(ctx)
	if err == nil {
		o.remoteACL(ctx, d.Target)
	}
	return d, err
}

func (o aclOps) Deprovision(ctx context.Context, who core.Principal, project, node, nic string) error {
	err := o.Service.Deprovision(ctx, who, project, node, nic)
	o.sec.syncAll(ctx)
	return err
}

// RotateSecret implements apiserver.Security: a new CHAP secret for the
// disk's target, sealed in the state DB and used by the target for logins
// from now on.
func (s *security) RotateSecret(ctx context.Context, who core.Principal, project, disk string) (core.Target, error) {
	ti, err := s.find(ctx, who, project, disk)
	if err != nil {
		return core.Target{}, err
	}
	t, err := s.db.Target(ctx, ti.DiskID)
	if err != nil {
		return core.Target{}, err
	}
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return core.Target{}, fmt.Errorf("chap secret: %w", err)
	}
	t.CHAPSecret = hex.EncodeToString(b[:])
	if err := s.db.SetCHAPSecret(ctx, t.DiskID, t.CHAPSecret); err != nil {
		return core.Target{}, err
	}
	if err := s.target.SetCHAP(ctx, t.IQN, iscsi.CHAP{User: t.CHAPUser, Secret: t.CHAPSecret}); err != nil && !errorsIsNotFound(err) {
		return core.Target{}, err
	}
	s.log.Info("CHAP secret rotated", "iqn", t.IQN, "project", project, "disk", disk, "user", who.User)
	return t, nil
}

// hiddenSecret replaces the CHAP secret in scripts shown to operators.
const hiddenSecret = "hidden-by-bmi"

// BootScript implements apiserver.Security: the script of a node the
// caller may see, with the CHAP secret hidden.
func (s *security) BootScript(ctx context.Context, who core.Principal, project, node string) ([]byte, error) {
	bc, err := s.svc.ShowBoot(ctx, who, project, node)
	if err != nil {
		return nil, err
	}
	_, t, err := s.svc.BootTarget(ctx, bc.MAC)
	if err != nil {
		return nil, err
	}
	t.CHAPSecret = hiddenSecret
	return s.script(bc, t)
}

// Credentials implements apiserver.Security: administrators only.
func (s *security) Credentials(ctx context.Context, who core.Principal, project, disk string) (api.Credentials, error) {
	if _, err := s.svc.ListTargets(ctx, who, ""); err != nil {
		return api.Credentials{}, err
	}
	ti, err := s.find(ctx, who, project, disk)
	if err != nil {
		return api.Credentials{}, err
	}
	t, err := s.db.Target(ctx, ti.DiskID)
	if err != nil {
		return api.Credentials{}, err
	}
	acl, err := s.aclOf(ctx, project, disk, t)
	if err != nil {
		return api.Credentials{}, err
	}
	s.log.Warn("CHAP secret read through the API", "user", who.User, "project", project, "disk", disk)
	return api.Credentials{IQN: t.IQN, CHAPUser: t.CHAPUser, CHAPSecret: t.CHAPSecret, Initiators: acl.Effective}, nil
}
