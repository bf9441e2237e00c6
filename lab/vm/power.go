package vm

import (
	"context"
	"fmt"

	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/hilmock"
)

// PowerDriver is hil-mock's power driver for lab machines: a node's
// PowerAddress is its libvirt domain name.
type PowerDriver struct {
	m *Machines
}

var _ hilmock.PowerDriver = (*PowerDriver)(nil)

// NewPowerDriver returns the power driver acting through m.
func NewPowerDriver(m *Machines) *PowerDriver { return &PowerDriver{m: m} }

func domain(node hilmock.Node) (string, error) {
	if node.PowerAddress == "" {
		return "", fmt.Errorf("node %s has no power address (the lab machine's name): %w", node.Name, fault.ErrInvalid)
	}
	return node.PowerAddress, nil
}

// PowerCycle powers the machine off and on again (on if it was off), so
// the boot device set before applies. force is accepted either way: the
// lab's guests do not handle an ACPI reboot request.
func (p *PowerDriver) PowerCycle(ctx context.Context, node hilmock.Node, _ bool) error {
	d, err := domain(node)
	if err != nil {
		return err
	}
	return p.m.Cycle(ctx, d)
}

// PowerOff pulls the machine's plug; an off machine stays off.
func (p *PowerDriver) PowerOff(ctx context.Context, node hilmock.Node) error {
	d, err := domain(node)
	if err != nil {
		return err
	}
	return p.m.Off(ctx, d)
}

// PowerOn starts the machine; a running machine is left alone.
func (p *PowerDriver) PowerOn(ctx context.Context, node hilmock.Node) error {
	d, err := domain(node)
	if err != nil {
		return err
	}
	return p.m.On(ctx, d)
}

// PowerStatus returns hilmock.PowerOnState or hilmock.PowerOffState.
func (p *PowerDriver) PowerStatus(ctx context.Context, node hilmock.Node) (string, error) {
	d, err := domain(node)
	if err != nil {
		return "", err
	}
	on, err := p.m.Running(ctx, d)
	if err != nil {
		return "", err
	}
	if on {
		return hilmock.PowerOnState, nil
	}
	return hilmock.PowerOffState, nil
}

// SetBootDevice sets the device the machine boots from at its next power
// on: hilmock.BootPXE, BootDisk or BootNone (PXE, then disk).
func (p *PowerDriver) SetBootDevice(ctx context.Context, node hilmock.Node, dev string) error {
	d, err := domain(node)
	if err != nil {
		return err
	}
	return p.m.SetBootDevice(ctx, d, dev)
}
