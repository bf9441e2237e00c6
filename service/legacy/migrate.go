package legacy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/store"
)

// CephImage is what the migration needs to know of one RBD image.
type CephImage struct {
	Size uint64
	// Parent is the "image@snapshot" a clone comes from; "" when flat.
	Parent string
	// Snaps maps each snapshot's name to whether it is protected.
	Snaps map[string]bool
}

// Ceph reads RBD images (the daemon's adapter of service/ceph). A missing
// image is an error of kind fault.NotFound.
type Ceph interface {
	Stat(ctx context.Context, name string) (CephImage, error)
}

// State is BMI's state database as the migration uses it (*store.DB).
type State interface {
	LegacyImported(ctx context.Context) (map[string]map[int64]int64, error)
	UnimportedRows(ctx context.Context) (int, error)
	ImportLegacy(ctx context.Context, b store.LegacyBatch) error
}

// NICs finds the label of a node's NIC by its MAC (HIL, with bmid's own
// account); the original's files hold the MAC only.
type NICs interface {
	NICOf(ctx context.Context, node, mac string) (string, error)
}

// Target is the BMI the site goes into: its uid, snapshot name and IQN
// prefix (for the disks' targets).
type Target struct {
	UID, Snapshot, IQNPrefix string
}

// Migrate checks the whole site against Ceph and the state, then (unless
// dryRun) writes what is not there yet in one transaction. Any problem
// stops it before anything is written, with an error naming the row.
// nics, when not nil, names each node's NIC; otherwise (or when it cannot)
// the boot config's NIC is left empty and the report says so.
func Migrate(ctx context.Context, site *Site, ceph Ceph, state State, nics NICs, to Target, dryRun bool) (Report, error) {
	r := Report{DryRun: dryRun, Source: site.DB}
	if site.Snapshot != to.Snapshot {
		return r, fault.Errorf(fault.Invalid, "the original's [bmi] snapshot is %q, bmid's ceph.snapshot is %q: set ceph.snapshot: %q "+
			"(every image keeps its snapshot; provisioning clones from it)", site.Snapshot, to.Snapshot, site.Snapshot)
	}
	done, err := state.LegacyImported(ctx)
	if err != nil {
		return r, err
	}
	projects := map[int64]Project{}
	for _, p := range site.Projects {
		projects[p.ID] = p
	}
	images := map[int64]Image{}
	for _, im := range site.Images {
		images[im.ID] = im
	}
	b := store.LegacyBatch{Source: site.DB,
		IQN:      func(id int64) string { return core.IQN(to.IQNPrefix, to.UID, id) },
		CHAPUser: func(id int64) string { return fmt.Sprintf("bmi-%s-%d", to.UID, id) },
		Secret:   randomSecret}
	for _, p := range site.Projects {
		if _, ok := done["project"][p.ID]; ok {
			r.Skipped = append(r.Skipped, fmt.Sprintf("project %q (row %d)", p.Name, p.ID))
			continue
		}
		if err := core.ValidateName("project name", p.Name); err != nil {
			return r, fmt.Errorf("project row %d: %w", p.ID, err)
		}
		b.Projects = append(b.Projects, store.LegacyProject{LegacyID: p.ID, Name: p.Name})
		r.Projects = append(r.Projects, p.Name)
	}
	byCeph := map[string]Image{}
	for _, im := range orderImages(site.Images) {
		row := fmt.Sprintf("image row %d (%q)", im.ID, im.Name)
		p, ok := projects[im.ProjectID]
		if !ok {
			return r, fault.Errorf(fault.Invalid, "%s: project_id %d is not a project row", row, im.ProjectID)
		}
		row = fmt.Sprintf("image row %d (%q of project %q)", im.ID, im.Name, p.Name)
		name := site.UID + "img" + fmt.Sprint(im.ID)
		byCeph[name] = im
		li, err := planImage(ctx, site, ceph, images, im, name, p.Name)
		if err != nil {
			return r, fmt.Errorf("%s: %w", row, err)
		}
		if _, ok := done["image"][im.ID]; ok {
			r.Skipped = append(r.Skipped, fmt.Sprintf("%s %q of project %q (row %d)", li.Kind, im.Name, p.Name, im.ID))
			continue
		}
		b.Images = append(b.Images, li)
		line := fmt.Sprintf("%q of project %q (Ceph %s)", im.Name, p.Name, name)
		switch li.Kind {
		case core.KindImage:
			r.Images = append(r.Images, line)
		case core.KindSnapshot:
			r.Snapshots = append(r.Snapshots, line)
		default:
			r.Disks = append(r.Disks, line)
			if f, ok := site.Targets[name]; ok {
				r.Hand = append(r.Hand, fmt.Sprintf("tgt target %s (%s): bmid exports disk %q itself now; stop tgtd's target "+
					"(tgt-admin -f --delete %s) and remove the file before bmid serves", name, f, im.Name, name))
			}
		}
	}
	booted := map[int64]bool{}
	for _, bf := range site.Boots {
		im, ok := byCeph[bf.Target]
		if !ok || im.ParentID == 0 || im.IsSnapshot {
			r.Hand = append(r.Hand, fmt.Sprintf("boot files of node %q (%s) name target %q, which is no provisioned disk of the database: "+
				"not taken over (stale files of a deprovisioned node?)", bf.Node, strings.Join(bf.Files, ", "), bf.Target))
			continue
		}
		booted[im.ID] = true
		if _, ok := done["image"][im.ID]; ok {
			continue
		}
		if err := core.ValidateNode("node name", bf.Node); err != nil {
			return r, fmt.Errorf("boot files of node %q: %w", bf.Node, err)
		}
		mac, err := core.NormalizeMAC(bf.MAC)
		if err != nil {
			return r, fmt.Errorf("boot file %s: %w", bf.Files[0], err)
		}
		p := projects[im.ProjectID]
		nic, why := "", "no HIL account is configured (hil.user)"
		if nics != nil {
			if nic, err = nics.NICOf(ctx, bf.Node, mac); err != nil {
				nic, why = "", err.Error()
			}
		}
		b.Boots = append(b.Boots, store.LegacyBoot{Node: bf.Node, Project: p.Name, NIC: nic, MAC: mac, DiskLegacyID: im.ID, OwnsDisk: im.Name == bf.Node})
		r.Boots = append(r.Boots, fmt.Sprintf("node %q boots disk %q of project %q (NIC %q, MAC %s)", bf.Node, im.Name, p.Name, nic, mac))
		if nic == "" {
			r.Hand = append(r.Hand, fmt.Sprintf("node %q: its NIC is unknown (the original's files hold the MAC only; HIL: %s); "+
				"`bmi boot set %s %s %s NIC` records it (dpro and node ip need it)", bf.Node, why, p.Name, bf.Node, im.Name))
		}
		r.Hand = append(r.Hand, fmt.Sprintf("node %q: its boot files %s are the old dnsmasq's; bmid serves its boot from now on "+
			"(stop the old DHCP/TFTP service for it)", bf.Node, strings.Join(bf.Files, ", ")))
	}
	for _, li := range b.Images {
		if li.Kind == core.KindDisk && !booted[li.LegacyID] {
			r.Hand = append(r.Hand, fmt.Sprintf("disk %q of project %q: no boot files boot it; it is a disk without a node "+
				"(`bmi boot set` points a node at it)", li.Name, li.Project))
		}
	}
	if len(b.Projects)+len(b.Images)+len(b.Boots) == 0 {
		r.Nothing = true
		return r, nil
	}
	n, err := state.UnimportedRows(ctx)
	if err != nil {
		return r, err
	}
	if n > 0 {
		return r, fault.Errorf(fault.Conflict, "the state database has %d project and image rows that migrate-legacy did not bring over: "+
			"migrate into a new state database (state.path)", n)
	}
	if dryRun {
		return r, nil
	}
	return r, state.ImportLegacy(ctx, b)
}

// planImage checks one image row against Ceph and says what it becomes.
func planImage(ctx context.Context, site *Site, ceph Ceph, images map[int64]Image, im Image, name, project string) (store.LegacyImage, error) {
	li := store.LegacyImage{LegacyID: im.ID, Project: project, Name: im.Name, CephName: name, Public: im.IsPublic, Kind: core.KindImage}
	var parent Image
	if im.ParentID != 0 {
		var ok bool
		if parent, ok = images[im.ParentID]; !ok {
			return li, fault.Errorf(fault.Invalid, "parent_id %d is not an image row", im.ParentID)
		}
		if parent.ProjectID != im.ProjectID {
			return li, fault.Errorf(fault.Invalid, "parent %q (row %d) is in another project", parent.Name, parent.ID)
		}
		li.ParentLegacyID = im.ParentID
		li.Kind = core.KindDisk
		if im.IsSnapshot {
			li.Kind = core.KindSnapshot
		}
	} else if im.IsSnapshot {
		li.Kind = core.KindImage // a snapshot whose image was removed: the original listed it as an image
	}
	if err := core.ValidateName("name", im.Name); err != nil {
		return li, err
	}
	info, err := ceph.Stat(ctx, name)
	if errors.Is(err, fault.ErrNotFound) {
		return li, fault.Errorf(fault.Invalid, "its Ceph image %s is missing from pool %q", name, site.Pool)
	}
	if err != nil {
		return li, err
	}
	li.Size = info.Size
	switch li.Kind {
	case core.KindDisk:
		want := site.UID + "img" + fmt.Sprint(parent.ID) + "@" + site.Snapshot
		if info.Parent != "" && info.Parent != want {
			return li, fault.Errorf(fault.Invalid, "its Ceph image %s is a clone of %s, not of its parent's %s", name, info.Parent, want)
		}
	default:
		if !info.Snaps[site.Snapshot] {
			return li, fault.Errorf(fault.Invalid, "its Ceph image %s has no protected snapshot %q", name, site.Snapshot)
		}
	}
	return li, nil
}

// orderImages puts every parent before its children (then by id).
func orderImages(ims []Image) []Image {
	out := append([]Image(nil), ims...)
	sort.SliceStable(out, func(i, j int) bool {
		if (out[i].ParentID == 0) != (out[j].ParentID == 0) {
			return out[i].ParentID == 0
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func randomSecret() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("chap secret: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
