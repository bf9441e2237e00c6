package steps

import (
	"context"
	"errors"
	"fmt"

	"github.com/bmi-go/bmi/service/client"
	"github.com/bmi-go/bmi/service/fault"
)

// undoer removes what a journal entry created, through the API an
// operator uses (as the site's administrator), then checks it is gone.
type undoer struct {
	site  *Site
	admin *client.Client
}

func newUndoer(site *Site) (*undoer, error) {
	c, err := site.Client(site.Admin)
	if err != nil {
		return nil, err
	}
	return &undoer{site: site, admin: c}, nil
}

// gone treats "not found" as success: undo is idempotent.
// A name BMI calls invalid cannot name anything either.
func gone(err error) error {
	if err == nil || errors.Is(err, fault.ErrNotFound) || errors.Is(err, fault.ErrInvalid) {
		return nil
	}
	return err
}

func (u *undoer) undo(ctx context.Context, e Entry) error {
	switch e.Op {
	case OpRBDImage:
		if exists, err := rbdExists(ctx, u.site, e.Name); err != nil {
			return err
		} else if exists {
			if out, err := rbdRun(ctx, u.site, "rm", "--no-progress", e.Name); err != nil {
				return fmt.Errorf("rbd rm %s: %w: %s", e.Name, err, out)
			}
		}
		if exists, err := rbdExists(ctx, u.site, e.Name); err != nil || exists {
			return errors.Join(err, fmt.Errorf("rbd image %s is still in pool %s", e.Name, u.site.Pool))
		}
		return nil
	case OpImage:
		if err := gone(u.admin.RemoveImage(ctx, e.Project, e.Name)); err != nil {
			return err
		}
		return u.imageGone(ctx, e.Project, e.Name)
	case OpSnapshot:
		if err := gone(u.admin.RemoveSnapshot(ctx, e.Project, e.Name)); err != nil {
			return err
		}
		return u.imageGone(ctx, e.Project, e.Name)
	case OpDisk:
		if err := gone(u.admin.DeleteDisk(ctx, e.Project, e.Name)); err != nil {
			return err
		}
		return u.imageGone(ctx, e.Project, e.Name)
	case OpProvision:
		if err := gone(u.admin.Deprovision(ctx, e.Project, e.Name, "")); err != nil {
			return err
		}
		return u.bootGone(ctx, e.Project, e.Name)
	case OpPower:
		// the lab image powers off by itself after its marker; off again is harmless
		cred := hilCred(u.site.Admin)
		return gone(u.site.HIL().PowerOff(ctx, cred, e.Name))
	case OpNetwork:
		cred := hilCred(u.site.Admin)
		_, derr := u.site.HIL().DetachNetwork(ctx, cred, e.Name, e.NIC, e.Network)
		hn, err := u.site.HIL().ShowNode(ctx, cred, e.Name)
		if err != nil {
			return err
		}
		if nic, err := hn.NIC(e.NIC); err != nil || nic.Networks[e.Network] != "" || onNetwork(nic.Networks, e.Network) {
			return fmt.Errorf("node %s nic %s is still on network %s (%v)", e.Name, e.NIC, e.Network, derr)
		}
		return nil
	case OpBoot:
		if err := gone(u.admin.ClearBoot(ctx, e.Project, e.Name)); err != nil {
			return err
		}
		return u.bootGone(ctx, e.Project, e.Name)
	}
	return fmt.Errorf("unknown journal entry kind %q", e.Op)
}

// imageGone is the negative check after removing an image, snapshot or
// disk: BMI no longer shows it.
func (u *undoer) imageGone(ctx context.Context, project, name string) error {
	if _, err := u.admin.Image(ctx, project, name); gone(err) != nil || err == nil {
		return fmt.Errorf("image %s of project %s is still there after its removal (%v)", name, project, err)
	}
	return nil
}

// bootGone is the negative check after a deprovision or clear boot.
func (u *undoer) bootGone(ctx context.Context, project, node string) error {
	if _, err := u.admin.Boot(ctx, project, node); gone(err) != nil || err == nil {
		return fmt.Errorf("node %s of project %s still has a boot config (%v)", node, project, err)
	}
	return nil
}

// onNetwork says whether a HIL NIC's networks (channel -> network) include
// network.
func onNetwork(nets map[string]string, network string) bool {
	for _, n := range nets {
		if n == network {
			return true
		}
	}
	return false
}
