package core

import (
	"context"
	"errors"
	"fmt"

	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/opjournal"
)

// setBootData is what setting a node's boot config journals.
type setBootData struct {
	nodeBoot
	Project string `json:"project"`
	DiskID  int64  `json:"image_id"`
	// Attach: this operation attaches the NIC to the provisioning network
	// (journaled in network once known).
	Attach bool `json:"attach,omitempty"`
	network
}

// setBootOp: record the boot config, write the legacy boot files, give
// the project its provisioning network (per-project networks) and attach
// the node's NIC to it (the commit) when the operation attaches. The
// first two steps and their order are those of a bmid before attaching,
// so its journals recover (one it committed is rolled back).
func (s *Service) setBootOp() *opjournal.Op[setBootData] {
	boot := func(d *setBootData) (*nodeBoot, string, int64) { return &d.nodeBoot, d.Project, d.DiskID }
	projNet := projectNetworkStep(s, func(d *setBootData) (*network, string) { return &d.network, d.Project })
	claim := projNet.Do
	projNet.Do = func(ctx context.Context, r *run[setBootData]) error {
		if !r.Data.Attach {
			return nil
		}
		return claim(ctx, r)
	}
	return &opjournal.Op[setBootData]{
		Kind: "set-boot",
		Steps: []step[setBootData]{
			putBootStep(s, boot),
			writeFilesStep(s, func(d *setBootData) *nodeBoot { return &d.nodeBoot }),
			projNet,
			connectStep(s, func(d *setBootData) (*nodeBoot, *network) { return &d.nodeBoot, &d.network }),
		},
		Commit: "connect network",
		Legacy: legacy[setBootData],
	}
}

// SetBoot makes node boot disk (the M2 split's boot config; switching a
// node between disks, seed 004). The node's MAC comes from HIL.
//
// Where BMI attaches nodes to a provisioning network (the shared
// hil.provisioning_network, or the project's own with boot.networks),
// SetBoot attaches the NIC to it as Provision does, unless BMI attached it
// already (pro, or an earlier SetBoot); ClearBoot and Deprovision detach
// it again. A node pro made a disk for keeps that disk as its own while it
// boots another one: Deprovision deletes it, and switching back makes the
// node own the disk it boots again. Changing the NIC of a node BMI
// attached is refused (clear its boot config first).
func (s *Service) SetBoot(ctx context.Context, who Principal, project, node, nic, disk string) (BootConfig, error) {
	if err := s.member(ctx, who, project); err != nil {
		return BootConfig{}, err
	}
	mac, err := s.nodeMAC(ctx, who, node, nic)
	if err != nil {
		return BootConfig{}, err
	}
	unlock, err := s.lock(describe("set boot", project, node), nodeKey(node), imageKey(project, disk))
	if err != nil {
		return BootConfig{}, err
	}
	defer unlock()
	d, err := s.readyImage(ctx, project, disk, KindDisk)
	if err != nil {
		return BootConfig{}, err
	}
	data := setBootData{nodeBoot: nodeBoot{Node: node, NIC: nic, MAC: mac}, Project: project, DiskID: d.ID}
	if prev, err := s.boots.Boot(ctx, node); err == nil {
		if prev.Project != project {
			return BootConfig{}, fault.Errorf(fault.Conflict, "node %q boots a disk of project %q", node, prev.Project)
		}
		// A migrated node's NIC is unknown (""): naming the NIC whose MAC
		// its boot config has records it. Any other NIC change of an
		// attached node would leave the attached NIC behind.
		recordsNIC := prev.NIC == "" && sameMAC(prev.MAC, mac)
		if prev.Attached && prev.NIC != nic && !recordsNIC {
			return BootConfig{}, fault.Errorf(fault.Conflict, "node %q is on the provisioning network through NIC %q (MAC %s), not %q (MAC %s); "+
				"clear its boot config (or deprovision it) first", node, prev.NIC, prev.MAC, nic, mac)
		}
		data.Prev = &prev
		data.OwnedDiskID, data.Attached = prev.OwnedDiskID, prev.Attached
	} else if !errors.Is(err, fault.ErrNotFound) {
		return BootConfig{}, err
	}
	if !data.Attached && s.attaches() {
		data.Attach, data.Attached = true, true
		data.network = network{Network: s.cfg.ProvisioningNetwork, Channel: s.cfg.Channel}
	}
	if err := start(ctx, s, s.ops.setBoot, describeOp(project, node, who), data); err != nil {
		return BootConfig{}, err
	}
	return s.boots.Boot(ctx, node)
}

// clearBootData is what clearing a node's boot config journals: the
// network to detach the NIC from (none: BMI did not attach it).
type clearBootData struct {
	nodeBoot
	network
}

// clearBootOp: delete the boot config (the commit), then the boot files,
// then detach the NIC from the provisioning network.
func (s *Service) clearBootOp() *opjournal.Op[clearBootData] {
	boot := func(d *clearBootData) *nodeBoot { return &d.nodeBoot }
	return &opjournal.Op[clearBootData]{
		Kind: "clear-boot",
		Steps: []step[clearBootData]{
			deleteBootStep(s, boot),
			removeFilesStep(s, boot),
			{Name: "detach network", Do: func(ctx context.Context, r *run[clearBootData]) error {
				return s.detach(ctx, r.Data.nodeBoot, r.Data.network)
			}},
		},
		Commit: "delete boot config",
		Legacy: legacy[clearBootData],
	}
}

// ClearBoot forgets which disk node boots: the node no longer netboots
// from BMI, and its NIC leaves the provisioning network if BMI attached
// it. The disk stays, and so does a disk pro made for the node (use
// Deprovision to delete that one).
func (s *Service) ClearBoot(ctx context.Context, who Principal, project, node string) error {
	if err := s.member(ctx, who, project); err != nil {
		return err
	}
	unlock, err := s.lock(describe("clear boot", project, node), nodeKey(node))
	if err != nil {
		return err
	}
	defer unlock()
	b, err := s.boots.Boot(ctx, node)
	if err != nil || b.Project != project {
		return fmt.Errorf("boot config of node %q in project %q: %w", node, project, fault.ErrNotFound)
	}
	n, err := s.attachedNetwork(ctx, b)
	if err != nil {
		return err
	}
	data := clearBootData{nodeBoot{Node: node, NIC: b.NIC, MAC: b.MAC, Prev: &b}, network{Network: n}}
	return start(ctx, s, s.ops.clearBoot, describeOp(project, node, who), data)
}

// putBootStep records a node's boot config; its undo puts back the
// previous one, or deletes it.
func putBootStep[D any](s *Service, boot func(*D) (b *nodeBoot, project string, diskID int64)) step[D] {
	return step[D]{
		Name: "record boot config",
		Do: func(ctx context.Context, r *run[D]) error {
			b, project, disk := boot(&r.Data)
			bc := BootConfig{Node: b.Node, Project: project, DiskID: disk, NIC: b.NIC, MAC: b.MAC, OwnedDiskID: b.OwnedDiskID, Attached: b.Attached}
			if b.OwnsDisk { // pro: the disk is the one it makes, and it attaches the NIC
				bc.OwnedDiskID, bc.Attached = disk, true
			}
			return s.boots.PutBoot(ctx, bc)
		},
		Undo: func(ctx context.Context, r *run[D]) error {
			b, _, _ := boot(&r.Data)
			if b.Prev != nil {
				return s.boots.PutBoot(ctx, *b.Prev)
			}
			return s.boots.DeleteBoot(ctx, b.Node)
		},
	}
}

// deleteBootStep deletes a node's boot config; its undo puts the journaled
// config back (a crash after the row was deleted but before that was
// journaled rolls back to it).
func deleteBootStep[D any](s *Service, boot func(*D) *nodeBoot) step[D] {
	return step[D]{
		Name: "delete boot config",
		Do:   func(ctx context.Context, r *run[D]) error { return s.boots.DeleteBoot(ctx, boot(&r.Data).Node) },
		Undo: func(ctx context.Context, r *run[D]) error {
			if prev := boot(&r.Data).Prev; prev != nil {
				return s.boots.PutBoot(ctx, *prev)
			}
			return nil // journaled by a bmid that did not record it
		},
	}
}

// writeFilesStep writes legacy boot files (when file mode is on); its undo
// removes them, or rewrites the previous config's.
func writeFilesStep[D any](s *Service, boot func(*D) *nodeBoot) step[D] {
	return step[D]{
		Name: "write boot files",
		Do: func(ctx context.Context, r *run[D]) error {
			b, err := s.boots.Boot(ctx, boot(&r.Data).Node)
			if err != nil {
				return err
			}
			return s.writeFiles(ctx, b)
		},
		Undo: func(ctx context.Context, r *run[D]) error {
			if s.files == nil {
				return nil
			}
			b := boot(&r.Data)
			if b.Prev != nil {
				return s.writeFiles(ctx, *b.Prev)
			}
			return s.files.Remove(ctx, b.Node, b.MAC)
		},
	}
}

// removeFilesStep removes a node's legacy boot files (forward only).
func removeFilesStep[D any](s *Service, boot func(*D) *nodeBoot) step[D] {
	return step[D]{Name: "remove boot files", Do: func(ctx context.Context, r *run[D]) error {
		if s.files == nil {
			return nil
		}
		b := boot(&r.Data)
		return s.files.Remove(ctx, b.Node, b.MAC)
	}}
}

func (s *Service) writeFiles(ctx context.Context, b BootConfig) error {
	if s.files == nil {
		return nil
	}
	t, err := s.targets.Target(ctx, b.DiskID)
	if err != nil {
		return err
	}
	return s.files.Write(ctx, BootFile{Node: b.Node, MAC: b.MAC, Disk: b.Disk, IQN: t.IQN, Target: t})
}

// nodeMAC asks HIL (as the caller) for the MAC of a node's NIC. HIL
// refuses nodes outside the caller's project.
func (s *Service) nodeMAC(ctx context.Context, who Principal, node, nic string) (string, error) {
	if err := ValidateNode("node name", node); err != nil {
		return "", err
	}
	if err := ValidateNode("NIC name", nic); err != nil {
		return "", err
	}
	mac, err := s.nodes.MAC(ctx, who, node, nic)
	if err != nil {
		return "", fmt.Errorf("NIC %q of node %q: %w", nic, node, err)
	}
	return NormalizeMAC(mac)
}

// NodeIP returns the address bmid's DHCP server leased to a node's NIC.
func (s *Service) NodeIP(ctx context.Context, who Principal, project, node, nic string) (string, error) {
	if err := s.member(ctx, who, project); err != nil {
		return "", err
	}
	mac, err := s.nodeMAC(ctx, who, node, nic)
	if err != nil {
		return "", err
	}
	l, err := s.leases.LeaseByMAC(ctx, mac)
	if err != nil {
		return "", err
	}
	return l.IP, nil
}

// ShowBoot returns node's boot config.
func (s *Service) ShowBoot(ctx context.Context, who Principal, project, node string) (BootConfig, error) {
	if err := s.member(ctx, who, project); err != nil {
		return BootConfig{}, err
	}
	b, err := s.boots.Boot(ctx, node)
	if err != nil || b.Project != project {
		return BootConfig{}, fmt.Errorf("boot config of node %q in project %q: %w", node, project, fault.ErrNotFound)
	}
	return b, nil
}

// ListBoots lists a project's boot configs.
func (s *Service) ListBoots(ctx context.Context, who Principal, project string) ([]BootConfig, error) {
	if err := s.member(ctx, who, project); err != nil {
		return nil, err
	}
	return s.boots.Boots(ctx, project, 0)
}

// sameMAC reports whether a and b are one MAC address, however written.
func sameMAC(a, b string) bool {
	na, err := NormalizeMAC(a)
	if err != nil {
		return false
	}
	nb, err := NormalizeMAC(b)
	return err == nil && na == nb
}
