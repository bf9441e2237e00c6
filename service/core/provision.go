package core

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/opjournal"
)

// provisionData is what a provision journals: the disk it makes (named
// after the node) from the image's snapshot, the node's boot config, and
// the provisioning network.
type provisionData struct {
	newRow
	source
	nodeBoot
	network
}

// provisionOp: the disk (row, clone, target record, export), the boot
// config and files, the project's provisioning network (per-project
// networks), the node's connection to the provisioning network, then ready
// (the commit).
func (s *Service) provisionOp() *opjournal.Op[provisionData] {
	row := func(d *provisionData) *newRow { return &d.newRow }
	boot := func(d *provisionData) *nodeBoot { return &d.nodeBoot }
	return &opjournal.Op[provisionData]{
		Kind: "provision",
		Steps: []step[provisionData]{
			insertRowStep(s, row),
			cloneStep(s, func(d *provisionData) *source { return &d.source }, func(d *provisionData) string { return d.Ceph }),
			targetRecordStep(s, row),
			exportStep(s, row),
			putBootStep(s, func(d *provisionData) (*nodeBoot, string, int64) { return &d.nodeBoot, d.Project, d.ImageID }),
			writeFilesStep(s, boot),
			projectNetworkStep(s, func(d *provisionData) (*network, string) { return &d.network, d.Project }),
			connectStep(s, func(d *provisionData) (*nodeBoot, *network) { return &d.nodeBoot, &d.network }),
			markReadyStep(s, row),
		},
		Commit: "mark ready",
		Legacy: legacy[provisionData],
	}
}

// Provision clones image into a disk named after node, exports it and
// makes node boot it, in one operation (the original's "bmi pro").
func (s *Service) Provision(ctx context.Context, who Principal, project, node, image, nic string) (DiskInfo, error) {
	if err := s.member(ctx, who, project); err != nil {
		return DiskInfo{}, err
	}
	mac, err := s.nodeMAC(ctx, who, node, nic)
	if err != nil {
		return DiskInfo{}, err
	}
	if err := ValidateName("disk name", node); err != nil {
		return DiskInfo{}, fmt.Errorf("node %q cannot name its disk: %w", node, err)
	}
	unlock, err := s.lock(describe("provision", project, node), nodeKey(node), imageKey(project, node))
	if err != nil {
		return DiskInfo{}, err
	}
	defer unlock()
	if b, err := s.boots.Boot(ctx, node); err == nil {
		return DiskInfo{}, fault.Errorf(fault.Conflict, "node %q is already provisioned: it boots disk %q of project %q", node, b.Disk, b.Project)
	} else if !errors.Is(err, fault.ErrNotFound) {
		return DiskInfo{}, err
	}
	src, err := s.readyImage(ctx, project, image, KindImage, KindSnapshot)
	if err != nil {
		return DiskInfo{}, err
	}
	if err := s.absent(ctx, project, node); err != nil {
		return DiskInfo{}, err
	}
	d := provisionData{
		newRow:   s.diskRow(project, node, src),
		source:   sourceOf(src.CephName, s.cfg.Snapshot),
		nodeBoot: nodeBoot{Node: node, NIC: nic, MAC: mac, OwnsDisk: true},
		network:  network{Network: s.cfg.ProvisioningNetwork, Channel: s.cfg.Channel},
	}
	if err := start(ctx, s, s.ops.provision, describeOp(project, node, who), d); err != nil {
		return DiskInfo{}, err
	}
	return s.diskInfo(ctx, project, node)
}

// deprovisionData is what a deprovision journals: the node's disk, its
// boot config and the provisioning network.
type deprovisionData struct {
	oldRow
	nodeBoot
	network
}

// deprovisionOp: mark the disk deleting (the commit), delete the boot
// config and files, detach the network, then unexport and remove the disk.
func (s *Service) deprovisionOp() *opjournal.Op[deprovisionData] {
	row := func(d *deprovisionData) *oldRow { return &d.oldRow }
	boot := func(d *deprovisionData) *nodeBoot { return &d.nodeBoot }
	return &opjournal.Op[deprovisionData]{
		Kind: "deprovision",
		Steps: []step[deprovisionData]{
			markStateStep(s, row, StateDeleting, StateReady),
			deleteBootStep(s, boot),
			removeFilesStep(s, boot),
			{Name: "detach network", Do: func(ctx context.Context, r *run[deprovisionData]) error {
				return s.detach(ctx, r.Data.nodeBoot, r.Data.network)
			}},
			unexportStep(s, row),
			removeImageStep(s, row),
			deleteRowStep(s, row),
		},
		Commit: "mark deleting",
		Legacy: legacy[deprovisionData],
	}
}

// Deprovision undoes what Provision did, whatever disk node boots now
// (the original's "bmi dpro"): it deletes the disk Provision made for node
// (if it still exists; never another disk, and never one another node
// boots), detaches the NIC BMI attached to the provisioning network, and
// clears the boot config. The disk node was switched to stays. A node pro
// made no disk for (only set-boot) has its boot config cleared as
// ClearBoot does. nic is checked against the boot config when given and
// the boot config knows its NIC.
func (s *Service) Deprovision(ctx context.Context, who Principal, project, node, nic string) error {
	if err := s.member(ctx, who, project); err != nil {
		return err
	}
	b, err := s.boots.Boot(ctx, node)
	if err != nil || b.Project != project {
		return fmt.Errorf("node %q is not provisioned in project %q: %w", node, project, fault.ErrNotFound)
	}
	if nic != "" && b.NIC != "" && nic != b.NIC { // a migrated node's NIC may be unknown ("")
		return fault.Errorf(fault.Invalid, "node %q boots through NIC %q, not %q", node, b.NIC, nic)
	}
	if b.OwnedDiskID == 0 {
		return s.ClearBoot(ctx, who, project, node)
	}
	disk, err := s.rows.ImageByID(ctx, b.OwnedDiskID)
	if err != nil {
		return err
	}
	unlock, err := s.lock(describe("deprovision", project, node), nodeKey(node), imageKey(disk.Project, disk.Name))
	if err != nil {
		return err
	}
	defer unlock()
	// Again under the locks: the boot config or the disk may have changed.
	if b, err = s.boots.Boot(ctx, node); err != nil || b.Project != project || b.OwnedDiskID != disk.ID {
		return fault.Errorf(fault.Conflict, "node %q changed while deprovisioning it; try again", node)
	}
	if disk, err = s.rows.ImageByID(ctx, b.OwnedDiskID); err != nil {
		return err
	}
	if disk.State != StateReady {
		return fault.Errorf(fault.Conflict, "disk %q of node %q is %s", disk.Name, node, disk.State)
	}
	boots, err := s.boots.Boots(ctx, "", disk.ID)
	if err != nil {
		return err
	}
	for _, o := range boots {
		if o.Node != node {
			return fault.Errorf(fault.Conflict, "disk %q that pro made for node %q is booted by node %q; clear that node's boot config first",
				disk.Name, node, o.Node)
		}
	}
	n, err := s.attachedNetwork(ctx, b)
	if err != nil {
		return err
	}
	d := deprovisionData{
		oldRow:   oldRow{ImageID: disk.ID, Ceph: disk.CephName, Project: disk.Project},
		nodeBoot: nodeBoot{Node: node, NIC: b.NIC, MAC: b.MAC, OwnsDisk: true, Prev: &b},
		network:  network{Network: n},
	}
	return start(ctx, s, s.ops.deprovision, describeOp(project, node, who), d)
}

// attaches says whether BMI attaches the NICs of the nodes it boots to a
// provisioning network: the shared one (hil.provisioning_network) or one
// per project (boot.networks).
func (s *Service) attaches() bool {
	return s.cfg.ProvisioningNetwork != "" || len(s.cfg.ProjectNetworks) > 0
}

// attachedNetwork is the provisioning network b's NIC is to be detached
// from: none when BMI did not attach it, the project's own with
// per-project networks ("" when the project has none: it was attached
// before the project had one), else the shared one.
func (s *Service) attachedNetwork(ctx context.Context, b BootConfig) (string, error) {
	if !b.Attached {
		return "", nil
	}
	if len(s.cfg.ProjectNetworks) == 0 {
		return s.cfg.ProvisioningNetwork, nil
	}
	n, err := s.projNets.ProjectNetwork(ctx, b.Project)
	if err != nil && !errors.Is(err, fault.ErrNotFound) {
		return "", err
	}
	return n, nil
}

// connectStep attaches the node's NIC to the provisioning network the
// operation's data names (none: nothing to do); its undo detaches it.
func connectStep[D any](s *Service, data func(*D) (*nodeBoot, *network)) step[D] {
	return step[D]{
		Name: "connect network",
		Do: func(ctx context.Context, r *run[D]) error {
			b, n := data(&r.Data)
			if n.Network == "" {
				return nil
			}
			return s.networks.ConnectNetwork(ctx, b.Node, b.NIC, n.Network, n.Channel)
		},
		Undo: func(ctx context.Context, r *run[D]) error {
			b, n := data(&r.Data)
			return s.detach(ctx, *b, *n)
		},
	}
}

// detach takes a node's NIC off the provisioning network (when the
// operation's data names one).
func (s *Service) detach(ctx context.Context, b nodeBoot, n network) error {
	if n.Network == "" {
		return nil
	}
	return s.networks.DetachNetwork(ctx, b.Node, b.NIC, n.Network)
}

// projectNetworkStep gives the operation's project its provisioning
// network when networks are per project: the one it has, or a free one of
// the configuration, created in HIL if it is not there yet; the network
// is journaled for the steps after. It has no undo: the network is the
// project's, not the node's, and stays with the project (reused by its
// next provision) until the project is removed.
func projectNetworkStep[D any](s *Service, data func(*D) (*network, string)) step[D] {
	return step[D]{Name: "project network", Do: func(ctx context.Context, r *run[D]) error {
		if len(s.cfg.ProjectNetworks) == 0 {
			return nil
		}
		n, project := data(&r.Data)
		names := make([]string, len(s.cfg.ProjectNetworks))
		for i, pn := range s.cfg.ProjectNetworks {
			names[i] = pn.Name
		}
		name, err := s.projNets.ClaimProjectNetwork(ctx, project, names)
		if err != nil {
			return err
		}
		i := slices.Index(names, name)
		if i < 0 {
			return fault.Errorf(fault.Conflict, "project %q has provisioning network %q, which boot.networks no longer lists: "+
				"put it back, or remove the project's nodes and the project", project, name)
		}
		if err := s.networks.EnsureNetwork(ctx, name, project, s.cfg.ProjectNetworks[i].VLAN); err != nil {
			return fmt.Errorf("provisioning network %q of project %q: %w", name, project, err)
		}
		n.Network = name
		return nil
	}}
}

// releaseProjectNetwork deletes a removed project's provisioning network
// in HIL and gives it back to the pool (per-project networks).
func (s *Service) releaseProjectNetwork(ctx context.Context, project string) error {
	if len(s.cfg.ProjectNetworks) == 0 {
		return nil
	}
	name, err := s.projNets.ProjectNetwork(ctx, project)
	if errors.Is(err, fault.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if err := s.networks.DeleteNetwork(ctx, name); err != nil {
		return fmt.Errorf("provisioning network %q of project %q: %w", name, project, err)
	}
	return s.projNets.ReleaseProjectNetwork(ctx, project)
}
