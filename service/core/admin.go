package core

import (
	"context"
	"fmt"

	"github.com/bmi-go/bmi/service/fault"
)

// CreateProject adds a project (admin). Its name must be the HIL project's.
func (s *Service) CreateProject(ctx context.Context, who Principal, name string) (Project, error) {
	if err := s.admin(ctx, who); err != nil {
		return Project{}, err
	}
	if err := ValidateName("project name", name); err != nil {
		return Project{}, err
	}
	return s.projects.CreateProject(ctx, name)
}

// ListProjects lists every project (admin).
func (s *Service) ListProjects(ctx context.Context, who Principal) ([]Project, error) {
	if err := s.admin(ctx, who); err != nil {
		return nil, err
	}
	return s.projects.Projects(ctx)
}

// RemoveProject removes a project (admin). A project that still owns
// images or disks is refused, unless force: then its nodes are
// deprovisioned and its disks, snapshots and images removed first, each by
// its own journaled operation.
func (s *Service) RemoveProject(ctx context.Context, who Principal, name string, force bool) error {
	if err := s.admin(ctx, who); err != nil {
		return err
	}
	if _, err := s.projects.Project(ctx, name); err != nil {
		return err
	}
	n, err := s.rows.CountImages(ctx, name)
	if err != nil {
		return err
	}
	if n > 0 && !force {
		return fault.Errorf(fault.Conflict, "project %q still owns %d image(s), snapshot(s) or disk(s); remove them or force", name, n)
	}
	if n > 0 {
		if err := s.emptyProject(ctx, who, name); err != nil {
			return fmt.Errorf("remove project %q: %w", name, err)
		}
	}
	// The network first: a crash after it leaves the project with a
	// network its next provision creates again.
	if err := s.releaseProjectNetwork(ctx, name); err != nil {
		return err
	}
	return s.projects.DeleteProject(ctx, name)
}

// emptyProject removes everything a project owns, children before parents:
// boot configs first (clearing them detaches the NICs BMI attached; the
// disks pro made go with the project's other disks, so a node booting
// another node's pro disk does not stop it as it would stop dpro).
func (s *Service) emptyProject(ctx context.Context, who Principal, project string) error {
	boots, err := s.boots.Boots(ctx, project, 0)
	if err != nil {
		return err
	}
	for _, b := range boots {
		if err := s.ClearBoot(ctx, who, project, b.Node); err != nil {
			return err
		}
	}
	for _, kind := range []Kind{KindDisk, KindSnapshot, KindImage} {
		ims, err := s.rows.Images(ctx, ImageFilter{Project: project, Kind: kind})
		if err != nil {
			return err
		}
		for _, im := range ims {
			if err := s.RemoveImage(ctx, who, project, im.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

// DBList lists rows for administrators (the original's "bmi db ls").
func (s *Service) DBList(ctx context.Context, who Principal, f ImageFilter) ([]Image, error) {
	if err := s.admin(ctx, who); err != nil {
		return nil, err
	}
	return s.rows.Images(ctx, f)
}

// ListImages lists a project's images (not snapshots or disks).
func (s *Service) ListImages(ctx context.Context, who Principal, project string) ([]Image, error) {
	return s.listKind(ctx, who, project, KindImage)
}

// ListSnapshots lists a project's snapshots with their parent images.
func (s *Service) ListSnapshots(ctx context.Context, who Principal, project string) ([]Image, error) {
	return s.listKind(ctx, who, project, KindSnapshot)
}

func (s *Service) listKind(ctx context.Context, who Principal, project string, k Kind) ([]Image, error) {
	if err := s.member(ctx, who, project); err != nil {
		return nil, err
	}
	return s.rows.Images(ctx, ImageFilter{Project: project, Kind: k})
}

// ShowImage returns one row of a project.
func (s *Service) ShowImage(ctx context.Context, who Principal, project, name string) (Image, error) {
	if err := s.member(ctx, who, project); err != nil {
		return Image{}, err
	}
	return s.rows.Image(ctx, project, name)
}

// TargetInfo is an export as the admin listing shows it.
type TargetInfo struct {
	Target
	Project  string `json:"project"`
	Disk     string `json:"disk"`
	Exported bool   `json:"exported"`
}

// ListTargets lists the iSCSI exports of a project, or of every project
// when project is "" (admin).
func (s *Service) ListTargets(ctx context.Context, who Principal, project string) ([]TargetInfo, error) {
	if project == "" {
		if err := s.admin(ctx, who); err != nil {
			return nil, err
		}
	} else if err := s.member(ctx, who, project); err != nil {
		return nil, err
	}
	ts, err := s.targets.Targets(ctx)
	if err != nil {
		return nil, err
	}
	live, err := s.exporter.Exported(ctx)
	if err != nil {
		return nil, err
	}
	exported := map[string]bool{}
	for _, iqn := range live {
		exported[iqn] = true
	}
	var out []TargetInfo
	for _, t := range ts {
		d, err := s.rows.ImageByID(ctx, t.DiskID)
		if err != nil {
			return nil, err
		}
		if project != "" && d.Project != project {
			continue
		}
		out = append(out, TargetInfo{Target: t, Project: d.Project, Disk: d.Name, Exported: exported[t.IQN]})
	}
	return out, nil
}

// ExportDisk (re-)exports a disk's target (the original's "iscsi create").
func (s *Service) ExportDisk(ctx context.Context, who Principal, project, disk string) (Target, error) {
	if err := s.member(ctx, who, project); err != nil {
		return Target{}, err
	}
	d, err := s.readyImage(ctx, project, disk, KindDisk)
	if err != nil {
		return Target{}, err
	}
	t, err := s.targets.Target(ctx, d.ID)
	if err != nil {
		return Target{}, err
	}
	return t, s.exporter.Export(ctx, s.exportSpec(t, d.CephName, d.Size))
}

// UnexportDisk stops exporting a disk (the original's "iscsi rm"); the
// disk and its record stay, and ExportDisk or a restart brings it back.
func (s *Service) UnexportDisk(ctx context.Context, who Principal, project, disk string) error {
	if err := s.member(ctx, who, project); err != nil {
		return err
	}
	d, err := s.readyImage(ctx, project, disk, KindDisk)
	if err != nil {
		return err
	}
	t, err := s.targets.Target(ctx, d.ID)
	if err != nil {
		return err
	}
	return s.exporter.Unexport(ctx, t.IQN)
}

// BootTarget returns what a MAC boots and the target to boot it from, for
// the DHCP server and the iPXE script handler (no principal: nodes ask).
func (s *Service) BootTarget(ctx context.Context, mac string) (BootConfig, Target, error) {
	m, err := NormalizeMAC(mac)
	if err != nil {
		return BootConfig{}, Target{}, err
	}
	b, err := s.boots.BootByMAC(ctx, m)
	if err != nil {
		return BootConfig{}, Target{}, err
	}
	t, err := s.targets.Target(ctx, b.DiskID)
	if err != nil {
		return BootConfig{}, Target{}, err
	}
	return b, t, nil
}
