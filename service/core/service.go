package core

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/opjournal"
)

// Config is what the core needs to know about the site.
type Config struct {
	// UID prefixes the RBD names of every row ("<uid>img<id>").
	UID string
	// Snapshot is the name of the protected snapshot every BMI image keeps
	// for cloning.
	Snapshot string
	// IQNPrefix prefixes every target name.
	IQNPrefix string
	// AdminProject's members are administrators (besides HIL admins).
	AdminProject string
	// BusyWait bounds how long removing an image waits while Ceph says it
	// is busy (a crashed process's watch lingers until the OSD times it
	// out); 0 does not wait.
	BusyWait time.Duration
	// ProvisioningNetwork, when set, is the HIL network Provision and
	// SetBoot attach the node's NIC to (on Channel) and Deprovision and
	// ClearBoot detach it from (only a NIC BMI attached).
	ProvisioningNetwork string
	// Channel is the HIL channel of ProvisioningNetwork ("vlan/native").
	Channel string
	// ProjectNetworks, when set, gives each project a provisioning
	// network of its own, one of these (instead of ProvisioningNetwork):
	// Provision and SetBoot connect the node to its project's network (on
	// Channel), creating the network in HIL on first use; Deprovision and
	// ClearBoot detach it.
	ProjectNetworks []ProjectNetwork
}

// ProjectNetwork is one provisioning network a project can be given.
type ProjectNetwork struct {
	// Name is the HIL network BMI creates.
	Name string
	// VLAN is its VLAN id (HIL net_id).
	VLAN int
}

// Deps are the collaborators. Files may be nil (no legacy file mode).
type Deps struct {
	Projects Projects
	Rows     Rows
	Targets  Targets
	Boots    Boots
	Leases   Leases
	Journal  opjournal.Journal
	Images   Images
	Exporter Exporter
	Files    BootFiles
	Nodes    Nodes
	// Networks is required when Config.ProvisioningNetwork or
	// Config.ProjectNetworks is set.
	Networks Networks
	// ProjectNets is required when Config.ProjectNetworks is set.
	ProjectNets ProjectNets
	Auth        Authorizer
	// Gateway, when set, makes this bmid one gateway among several on a
	// shared state database (locks in the database, take-over of dead
	// gateways); nil: the only bmid on its database.
	Gateway Gateway
	Log     *slog.Logger
}

// Service runs BMI's operations.
type Service struct {
	cfg      Config
	projects Projects
	rows     Rows
	targets  Targets
	boots    Boots
	leases   Leases
	journal  opjournal.Journal
	ceph     Images
	exporter Exporter
	files    BootFiles
	nodes    Nodes
	networks Networks
	projNets ProjectNets
	auth     Authorizer
	log      *slog.Logger
	locks    *locker
	gateway  Gateway
	engine   *opjournal.Engine
	ops      operations
}

// operations are the multi-step operations, each declared in its own file.
type operations struct {
	imp, copy, snapshot *opjournal.Op[copyData]
	export              *opjournal.Op[exportData]
	remove              *opjournal.Op[removeData]
	createDisk          *opjournal.Op[createDiskData]
	deleteDisk          *opjournal.Op[deleteDiskData]
	provision           *opjournal.Op[provisionData]
	deprovision         *opjournal.Op[deprovisionData]
	setBoot             *opjournal.Op[setBootData]
	clearBoot           *opjournal.Op[clearBootData]
	upload              *opjournal.Op[uploadData]
}

// New returns a Service. It does not recover unfinished operations: call
// Start once the collaborators are up (bmid does at start).
func New(cfg Config, d Deps) (*Service, error) {
	switch {
	case cfg.UID == "" || cfg.Snapshot == "" || cfg.IQNPrefix == "":
		return nil, fault.Errorf(fault.Invalid, "core: uid, snapshot and iqn prefix are required")
	case d.Projects == nil || d.Rows == nil || d.Targets == nil || d.Boots == nil || d.Leases == nil || d.Journal == nil:
		return nil, fault.Errorf(fault.Invalid, "core: projects, rows, targets, boots, leases and journal are required")
	case d.Images == nil || d.Exporter == nil || d.Nodes == nil || d.Auth == nil || d.Log == nil:
		return nil, fault.Errorf(fault.Invalid, "core: images, exporter, nodes, auth and log are required")
	case cfg.ProvisioningNetwork != "" && (d.Networks == nil || cfg.Channel == ""):
		return nil, fault.Errorf(fault.Invalid, "core: a provisioning network needs a HIL account for network changes and a channel")
	case len(cfg.ProjectNetworks) > 0 && (d.Networks == nil || d.ProjectNets == nil || cfg.Channel == "" || cfg.ProvisioningNetwork != ""):
		return nil, fault.Errorf(fault.Invalid, "core: per-project networks need a HIL account for network changes, the project-network table and a channel, and no shared provisioning network")
	}
	s := &Service{cfg: cfg, projects: d.Projects, rows: d.Rows, targets: d.Targets, boots: d.Boots, leases: d.Leases, journal: d.Journal,
		ceph: d.Images, exporter: d.Exporter, files: d.Files, nodes: d.Nodes, networks: d.Networks, projNets: d.ProjectNets, auth: d.Auth,
		log: d.Log, locks: newLocker(), gateway: d.Gateway}
	s.ops = operations{
		imp: s.copyOp("import"), copy: s.copyOp("copy"), snapshot: s.copyOp("snapshot"),
		export: s.exportOp(), remove: s.removeOp(),
		createDisk: s.createDiskOp(), deleteDisk: s.deleteDiskOp(),
		provision: s.provisionOp(), deprovision: s.deprovisionOp(),
		setBoot: s.setBootOp(), clearBoot: s.clearBootOp(), upload: s.uploadOp(),
	}
	o := s.ops
	var err error
	s.engine, err = opjournal.New(d.Journal, d.Log, o.imp, o.copy, o.snapshot, o.export, o.remove, o.createDisk, o.deleteDisk,
		o.provision, o.deprovision, o.setBoot, o.clearBoot, o.upload)
	if err != nil {
		return nil, err
	}
	if d.Gateway != nil {
		s.engine.SetGateway(d.Gateway.ID())
	}
	return s, nil
}

// SetCrashHook installs a function called at every point of every operation
// where a crash can fall (kind, step index, phase; see opjournal). Tests
// use it to kill the process mid-operation; production never sets it.
func (s *Service) SetCrashHook(fn func(kind string, seq int, phase string)) { s.engine.SetHook(fn) }

// Kinds lists the multi-step operations and their step names, for
// documentation and for the crash tests.
func (s *Service) Kinds() map[string][]string { return s.engine.Kinds() }

// RecoverAll finishes every unfinished operation (see opjournal).
func (s *Service) RecoverAll(ctx context.Context) error { return s.engine.RecoverAll(ctx) }

// RetryFailed retries the operations that failed after their commit step
// or whose rollback did not finish; bmid calls it periodically.
func (s *Service) RetryFailed(ctx context.Context) error { return s.engine.RetryFailed(ctx) }

// WithOpNotify returns a context whose operations call fn with their id as
// soon as they are journaled, so a caller can return the id to poll while
// the operation goes on.
func WithOpNotify(ctx context.Context, fn func(id string)) context.Context {
	return opjournal.WithNotify(ctx, fn)
}

// admin checks that who is an administrator: a HIL admin or a member of
// the admin project.
func (s *Service) admin(ctx context.Context, who Principal) error {
	if err := s.auth.Authenticate(ctx, who); err != nil {
		return err
	}
	ok, err := s.auth.IsAdmin(ctx, who)
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	if s.cfg.AdminProject != "" && s.auth.ProjectAccess(ctx, who, s.cfg.AdminProject) == nil {
		return nil
	}
	return fault.Errorf(fault.Forbidden, "user %q is not an administrator", who.User)
}

// member checks that who may act in project (admins may act anywhere) and
// that BMI knows the project.
func (s *Service) member(ctx context.Context, who Principal, project string) error {
	if err := ValidateName("project name", project); err != nil {
		return err
	}
	if err := s.auth.Authenticate(ctx, who); err != nil {
		return err
	}
	if err := s.auth.ProjectAccess(ctx, who, project); err != nil {
		if s.admin(ctx, who) != nil {
			return err
		}
	}
	if _, err := s.projects.Project(ctx, project); err != nil {
		return err
	}
	return nil
}

// Op returns an operation with its journal; members of its project see it.
func (s *Service) Op(ctx context.Context, who Principal, id string) (Operation, error) {
	op, err := s.journal.Op(ctx, id)
	if err != nil {
		return Operation{}, err
	}
	if op.Project != "" {
		if err := s.member(ctx, who, op.Project); err != nil {
			return Operation{}, err
		}
	} else if err := s.admin(ctx, who); err != nil {
		return Operation{}, err
	}
	return op, nil
}

// Ops lists recent operations (admin).
func (s *Service) Ops(ctx context.Context, who Principal, st OpState, limit int) ([]Operation, error) {
	if err := s.admin(ctx, who); err != nil {
		return nil, err
	}
	return s.journal.Ops(ctx, st, limit)
}

func describe(kind, project, name string) string {
	return fmt.Sprintf("%s of %q in project %q", kind, name, project)
}
