package netns

import (
	"context"
	"fmt"

	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/hilmock"
)

// SwitchDriver is hil-mock's switch driver for the lab: a NIC's Port is
// its tap, and connecting it to a network puts the tap on that VLAN's
// bridge. Only native (untagged) channels are emulated, one per NIC.
type SwitchDriver struct {
	n *Net
}

var _ hilmock.SwitchDriver = (*SwitchDriver)(nil)

// NewSwitchDriver returns the switch driver of the lab network n.
func NewSwitchDriver(n *Net) *SwitchDriver { return &SwitchDriver{n: n} }

func port(nic hilmock.NIC) (string, error) {
	if nic.Port == "" {
		return "", fmt.Errorf("NIC %s of node %s has no switch port (its lab tap): %w", nic.Label, nic.Node, fault.ErrInvalid)
	}
	return nic.Port, nil
}

// Connect puts the NIC's tap on vlan. channel must be "vlan/native"; a NIC
// already on another VLAN is refused (ErrConflict): detach it first.
func (s *SwitchDriver) Connect(ctx context.Context, nic hilmock.NIC, vlan int, channel string) error {
	p, err := port(nic)
	if err != nil {
		return err
	}
	if channel != "vlan/native" {
		return fmt.Errorf("NIC %s of node %s: channel %q: the lab emulates only vlan/native: %w", nic.Label, nic.Node, channel, fault.ErrInvalid)
	}
	if vlan < 1 || vlan > 4094 {
		return fmt.Errorf("NIC %s of node %s: VLAN %d: want 1..4094: %w", nic.Label, nic.Node, vlan, fault.ErrInvalid)
	}
	have, err := s.n.VLAN(ctx, p)
	if err != nil {
		return err
	}
	if have != 0 && have != vlan {
		return fmt.Errorf("NIC %s of node %s is on VLAN %d already: %w", nic.Label, nic.Node, have, fault.ErrConflict)
	}
	return s.n.SetVLAN(ctx, p, vlan)
}

// Detach takes the NIC's tap off vlan; a NIC not on vlan is left alone.
func (s *SwitchDriver) Detach(ctx context.Context, nic hilmock.NIC, vlan int) error {
	p, err := port(nic)
	if err != nil {
		return err
	}
	have, err := s.n.VLAN(ctx, p)
	if err != nil {
		return err
	}
	if have != vlan {
		return nil
	}
	return s.n.SetVLAN(ctx, p, 0)
}
