package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/bmi-go/bmi/service/fault"
)

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

// SetBoot makes node boot disk (the M2 split's boot config; switching a
// node between disks, seed 004). The node's MAC comes from HIL.
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
	data := map[string]string{"node": node, "nic": nic, "mac": mac, "project": project, "image_id": itoa(d.ID)}
	if prev, err := s.store.Boot(ctx, node); err == nil {
		if prev.Project != project {
			return BootConfig{}, fault.Errorf(fault.Conflict, "node %q boots a disk of project %q", node, prev.Project)
		}
		b, _ := json.Marshal(prev)
		data["prev"] = string(b)
	} else if !errors.Is(err, fault.ErrNotFound) {
		return BootConfig{}, err
	}
	if _, err := s.run(ctx, who, plan{kind: "set-boot", project: project, target: node, data: data}); err != nil {
		return BootConfig{}, err
	}
	return s.store.Boot(ctx, node)
}

// putBootStep records the boot config (owns_disk from data); its undo puts
// back the previous one, or deletes it.
func (s *Service) putBootStep() step {
	return step{
		name: "record boot config",
		do: func(ctx context.Context, r *opRun) error {
			owns := r.get("owns_disk") == "1"
			return s.store.PutBoot(ctx, BootConfig{Node: r.get("node"), Project: r.get("project"), DiskID: atoi(r.get("image_id")),
				NIC: r.get("nic"), MAC: r.get("mac"), OwnsDisk: owns})
		},
		undo: func(ctx context.Context, r *opRun) error {
			if p := r.get("prev"); p != "" {
				var prev BootConfig
				if err := json.Unmarshal([]byte(p), &prev); err != nil {
					return err
				}
				return s.store.PutBoot(ctx, prev)
			}
			return s.store.DeleteBoot(ctx, r.get("node"))
		},
	}
}

// writeFilesStep writes legacy boot files (when file mode is on); its undo
// removes them, or rewrites the previous config's.
func (s *Service) writeFilesStep() step {
	return step{
		name: "write boot files",
		do: func(ctx context.Context, r *opRun) error {
			b, err := s.store.Boot(ctx, r.get("node"))
			if err != nil {
				return err
			}
			return s.writeFiles(ctx, b)
		},
		undo: func(ctx context.Context, r *opRun) error {
			if s.files == nil {
				return nil
			}
			if p := r.get("prev"); p != "" {
				var prev BootConfig
				if err := json.Unmarshal([]byte(p), &prev); err != nil {
					return err
				}
				return s.writeFiles(ctx, prev)
			}
			return s.files.Remove(ctx, r.get("node"), r.get("mac"))
		},
	}
}

func (s *Service) writeFiles(ctx context.Context, b BootConfig) error {
	if s.files == nil {
		return nil
	}
	t, err := s.store.Target(ctx, b.DiskID)
	if err != nil {
		return err
	}
	return s.files.Write(ctx, BootFile{Node: b.Node, MAC: b.MAC, Disk: b.Disk, IQN: t.IQN, Target: t})
}

// ClearBoot forgets which disk node boots: the node no longer netboots
// from BMI. The disk stays.
func (s *Service) ClearBoot(ctx context.Context, who Principal, project, node string) error {
	if err := s.member(ctx, who, project); err != nil {
		return err
	}
	unlock, err := s.lock(describe("clear boot", project, node), nodeKey(node))
	if err != nil {
		return err
	}
	defer unlock()
	b, err := s.store.Boot(ctx, node)
	if err != nil || b.Project != project {
		return fmt.Errorf("boot config of node %q in project %q: %w", node, project, fault.ErrNotFound)
	}
	prev, err := json.Marshal(b)
	if err != nil {
		return err
	}
	data := map[string]string{"node": node, "mac": b.MAC, "prev": string(prev)}
	_, err = s.run(ctx, who, plan{kind: "clear-boot", project: project, target: node, data: data})
	return err
}

// clearBootSteps: delete the boot config (commit 0), then the boot files.
// Undoing the deletion puts the journaled config back: a crash after the
// row was deleted but before that was journaled rolls back to the config.
func (s *Service) clearBootSteps() []step {
	return []step{
		{
			name: "delete boot config",
			do:   func(ctx context.Context, r *opRun) error { return s.store.DeleteBoot(ctx, r.get("node")) },
			undo: func(ctx context.Context, r *opRun) error {
				p := r.get("prev")
				if p == "" {
					return nil // journaled by a bmid that did not record it
				}
				var prev BootConfig
				if err := json.Unmarshal([]byte(p), &prev); err != nil {
					return err
				}
				return s.store.PutBoot(ctx, prev)
			},
		},
		s.removeFilesStep(),
	}
}

func (s *Service) removeFilesStep() step {
	return step{name: "remove boot files", do: func(ctx context.Context, r *opRun) error {
		if s.files == nil {
			return nil
		}
		return s.files.Remove(ctx, r.get("node"), r.get("mac"))
	}}
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
	if b, err := s.store.Boot(ctx, node); err == nil {
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
	data := s.diskData(project, node, src)
	data["node"], data["nic"], data["mac"], data["owns_disk"] = node, nic, mac, "1"
	data["network"], data["channel"] = s.cfg.ProvisioningNetwork, s.cfg.Channel
	if _, err := s.run(ctx, who, plan{kind: "provision", project: project, target: node, data: data}); err != nil {
		return DiskInfo{}, err
	}
	return s.diskInfo(ctx, project, node)
}

// provisionSteps: the disk steps, then boot config and files, the
// provisioning network, then ready (commit 7).
func (s *Service) provisionSteps() []step {
	return []step{s.insertRowStep(), s.cloneStep(), s.targetRecordStep(), s.exportStep(),
		s.putBootStep(), s.writeFilesStep(), s.connectStep(), s.markReadyStep()}
}

// connectStep attaches the node's NIC to the provisioning network (when
// the operation's data names one); its undo detaches it.
func (s *Service) connectStep() step {
	return step{
		name: "connect network",
		do: func(ctx context.Context, r *opRun) error {
			if r.get("network") == "" {
				return nil
			}
			return s.networks.ConnectNetwork(ctx, r.get("node"), r.get("nic"), r.get("network"), r.get("channel"))
		},
		undo: func(ctx context.Context, r *opRun) error { return s.detach(ctx, r) },
	}
}

func (s *Service) detach(ctx context.Context, r *opRun) error {
	if r.get("network") == "" {
		return nil
	}
	return s.networks.DetachNetwork(ctx, r.get("node"), r.get("nic"), r.get("network"))
}

// Deprovision stops node from netbooting and, when its disk was made by
// Provision, deletes the disk (the original's "bmi dpro"). nic is checked
// against the boot config when given.
func (s *Service) Deprovision(ctx context.Context, who Principal, project, node, nic string) error {
	if err := s.member(ctx, who, project); err != nil {
		return err
	}
	b, err := s.store.Boot(ctx, node)
	if err != nil || b.Project != project {
		return fmt.Errorf("node %q is not provisioned in project %q: %w", node, project, fault.ErrNotFound)
	}
	if nic != "" && nic != b.NIC {
		return fault.Errorf(fault.Invalid, "node %q boots through NIC %q, not %q", node, b.NIC, nic)
	}
	if !b.OwnsDisk {
		return s.ClearBoot(ctx, who, project, node)
	}
	unlock, err := s.lock(describe("deprovision", project, node), nodeKey(node), imageKey(project, b.Disk))
	if err != nil {
		return err
	}
	defer unlock()
	d, err := s.store.ImageByID(ctx, b.DiskID)
	if err != nil {
		return err
	}
	data := map[string]string{"node": node, "nic": b.NIC, "mac": b.MAC, "image_id": itoa(d.ID), "ceph": d.CephName, "project": project,
		"network": s.cfg.ProvisioningNetwork}
	_, err = s.run(ctx, who, plan{kind: "deprovision", project: project, target: node, data: data})
	return err
}

// deprovisionSteps: mark deleting (commit 0), boot config and files, the
// provisioning network, then the disk.
func (s *Service) deprovisionSteps() []step {
	steps := []step{s.markStateStep(StateDeleting, StateReady)}
	steps = append(steps, s.clearBootSteps()...)
	steps = append(steps, step{name: "detach network", do: func(ctx context.Context, r *opRun) error { return s.detach(ctx, r) }})
	return append(steps, s.deleteDiskSteps()[1:]...)
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
	l, err := s.store.LeaseByMAC(ctx, mac)
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
	b, err := s.store.Boot(ctx, node)
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
	return s.store.Boots(ctx, project, 0)
}
