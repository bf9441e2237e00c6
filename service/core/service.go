package core

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/bmi-go/bmi/service/fault"
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
	// ProvisioningNetwork, when set, is the HIL network Provision attaches
	// the node's NIC to (on Channel) and Deprovision detaches it from.
	ProvisioningNetwork string
	// Channel is the HIL channel of ProvisioningNetwork ("vlan/native").
	Channel string
}

// Deps are the collaborators. Files may be nil (no legacy file mode).
type Deps struct {
	Store    Store
	Images   Images
	Exporter Exporter
	Files    BootFiles
	Nodes    Nodes
	// Networks is required when Config.ProvisioningNetwork is set.
	Networks Networks
	Auth     Authorizer
	Log      *slog.Logger
}

// Service runs BMI's operations.
type Service struct {
	cfg       Config
	store     Store
	images    Images
	exporter  Exporter
	files     BootFiles
	nodes     Nodes
	networks  Networks
	auth      Authorizer
	log       *slog.Logger
	locks     *locker
	kinds     map[string]opKind
	crashHook func(kind string, seq int, phase string)

	// recoverMu serialises recoveries (start-up, Reconcile, RetryFailed).
	recoverMu sync.Mutex
	// liveMu guards live: the operations running in this process, which
	// recovery must never touch.
	liveMu sync.Mutex
	live   map[string]bool
}

// opKind is a registered multi-step operation.
type opKind struct {
	steps  func() []step
	commit int
}

// New returns a Service. It does not recover unfinished operations: call
// RecoverAll once the collaborators are up (bmid does at start).
func New(cfg Config, d Deps) (*Service, error) {
	switch {
	case cfg.UID == "" || cfg.Snapshot == "" || cfg.IQNPrefix == "":
		return nil, fault.Errorf(fault.Invalid, "core: uid, snapshot and iqn prefix are required")
	case d.Store == nil || d.Images == nil || d.Exporter == nil || d.Nodes == nil || d.Auth == nil || d.Log == nil:
		return nil, fault.Errorf(fault.Invalid, "core: store, images, exporter, nodes, auth and log are required")
	case cfg.ProvisioningNetwork != "" && (d.Networks == nil || cfg.Channel == ""):
		return nil, fault.Errorf(fault.Invalid, "core: a provisioning network needs a HIL account for network changes and a channel")
	}
	s := &Service{cfg: cfg, store: d.Store, images: d.Images, exporter: d.Exporter, files: d.Files,
		nodes: d.Nodes, networks: d.Networks, auth: d.Auth, log: d.Log, locks: newLocker(), live: map[string]bool{}}
	s.kinds = s.registry()
	return s, nil
}

// SetCrashHook installs a function called at every journal point of every
// operation (kind, step index, phase). Tests use it to kill the process
// mid-operation; production never sets it.
func (s *Service) SetCrashHook(fn func(kind string, seq int, phase string)) { s.crashHook = fn }

func (s *Service) stepsFor(kind string) ([]step, error) {
	k, ok := s.kinds[kind]
	if !ok {
		return nil, fault.Errorf(fault.Internal, "unknown operation kind %q in the journal", kind)
	}
	return k.steps(), nil
}

func (s *Service) commitOf(kind string) int { return s.kinds[kind].commit }

// Kinds lists the registered multi-step operations and their step names,
// for documentation and for the crash tests.
func (s *Service) Kinds() map[string][]string {
	out := map[string][]string{}
	for k, v := range s.kinds {
		for _, st := range v.steps() {
			out[k] = append(out[k], st.name)
		}
	}
	return out
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
	if _, err := s.store.Project(ctx, project); err != nil {
		return err
	}
	return nil
}

// Op returns an operation with its journal; members of its project see it.
func (s *Service) Op(ctx context.Context, who Principal, id string) (Operation, error) {
	op, err := s.store.Op(ctx, id)
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
	return s.store.Ops(ctx, st, limit)
}

// lockImages takes the locks of images and nodes for an operation.
func (s *Service) lock(holder string, keys ...string) (func(), error) {
	return s.locks.lock(holder, keys...)
}

func describe(kind, project, name string) string {
	return fmt.Sprintf("%s of %q in project %q", kind, name, project)
}
