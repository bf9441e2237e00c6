//go:build ceph_preview

package daemon

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/bmi-go/bmi/service/boot"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/iscsi"
)

// bootLogins puts every login to a disk on the boot timeline of the node
// that boots that disk: iPXE's login, then the booted OS's, are the last
// two steps of a boot.
type bootLogins struct {
	boots interface {
		Boots(ctx context.Context, project string, diskID int64) ([]core.BootConfig, error)
	}
	prefix, uid string
	// tl records the login as a boot step (bmid's bootWatch: the
	// timeline, the step counters, the event stream).
	tl interface {
		Record(ctx context.Context, ev boot.Event)
	}
	log *slog.Logger
}

var _ iscsi.LoginObserver = (*bootLogins)(nil)

// ObserveLogin implements iscsi.LoginObserver. It runs on the login's
// connection, after the initiator heard a success (and before it hears a
// failure), so it asks the database with a short deadline.
func (b *bootLogins) ObserveLogin(ev iscsi.LoginEvent) {
	if ev.Discovery || ev.Target == "" {
		return
	}
	at := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	mac, ok := b.node(ctx, ev)
	if !ok {
		return
	}
	e := boot.Event{MAC: mac, Step: boot.StepLogin, At: at, Client: boot.ClientOS,
		Remote: ev.Remote, Initiator: ev.Initiator, Session: ev.ISID, Detail: "target " + ev.Target}
	if boot.IPXEISID(ev.ISID) {
		e.Client = boot.ClientIPXE
	}
	if !ev.OK {
		e.Step, e.Detail = boot.StepLoginRefused, ev.Reason
	}
	b.tl.Record(ctx, e)
}

// node finds the MAC of the node that boots the login's target: the one
// whose initiator name logged in, else the only one that boots it.
func (b *bootLogins) node(ctx context.Context, ev iscsi.LoginEvent) (net.HardwareAddr, bool) {
	boots, err := b.boots.Boots(ctx, "", 0)
	if err != nil {
		b.log.Warn("boot timeline: login not recorded", "target", ev.Target, "err", err)
		return nil, false
	}
	var found []core.BootConfig
	for _, bc := range boots {
		if core.IQN(b.prefix, b.uid, bc.DiskID) != ev.Target {
			continue
		}
		if iscsi.NodeInitiator(b.prefix, b.uid, bc.Node) == ev.Initiator {
			found = []core.BootConfig{bc}
			break
		}
		found = append(found, bc)
	}
	if len(found) != 1 {
		return nil, false
	}
	mac, err := net.ParseMAC(found[0].MAC)
	return mac, err == nil
}
