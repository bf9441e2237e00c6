package hilmock

import (
	"context"
	"net/http"
	"slices"
)

// powerNode loads the node and checks the caller may control its power:
// HIL's require_project_access(node.project), so a free node is admin-only.
func (s *Server) powerNode(ctx context.Context, c *call) (Node, error) {
	n, err := loadNode(ctx, s.db, c.path("node"))
	if err != nil {
		return Node{}, err
	}
	if err := c.who.requireProjectAccess(n.project); err != nil {
		return Node{}, err
	}
	return n.driverNode(), nil
}

func obmError(err error) error { return errorf(TypeOBM, "%v", err) }

// powerCycle is POST /v0/node/<n>/power_cycle {"force"?}: next boot from
// PXE, then a reset (the node is powered on if it was off).
func (s *Server) powerCycle(ctx context.Context, c *call) (reply, error) {
	n, err := s.powerNode(ctx, c)
	if err != nil {
		return reply{}, err
	}
	if err := s.power.SetBootDevice(ctx, n, BootPXE); err != nil {
		return reply{}, obmError(err)
	}
	if err := s.power.PowerCycle(ctx, n, c.boolean("force")); err != nil {
		return reply{}, obmError(err)
	}
	return ok200, nil
}

func (s *Server) powerOff(ctx context.Context, c *call) (reply, error) {
	n, err := s.powerNode(ctx, c)
	if err != nil {
		return reply{}, err
	}
	if err := s.power.PowerOff(ctx, n); err != nil {
		return reply{}, obmError(err)
	}
	return ok200, nil
}

func (s *Server) powerOn(ctx context.Context, c *call) (reply, error) {
	n, err := s.powerNode(ctx, c)
	if err != nil {
		return reply{}, err
	}
	if err := s.power.PowerOn(ctx, n); err != nil {
		return reply{}, obmError(err)
	}
	return ok200, nil
}

// powerStatus is GET /v0/node/<n>/power_status → {"power_status": "On"|"Off"}
// (HIL HEAD, which relays obmd's answer).
func (s *Server) powerStatus(ctx context.Context, c *call) (reply, error) {
	n, err := s.powerNode(ctx, c)
	if err != nil {
		return reply{}, err
	}
	st, err := s.power.PowerStatus(ctx, n)
	if err != nil {
		return reply{}, obmError(err)
	}
	switch st {
	case PowerOnState:
		return reply{http.StatusOK, map[string]string{"power_status": "On"}}, nil
	case PowerOffState:
		return reply{http.StatusOK, map[string]string{"power_status": "Off"}}, nil
	}
	return reply{}, errorf(TypeOBM, "power driver answered %q, want on or off", st)
}

// setBootDevice is PUT /v0/node/<n>/boot_device {"bootdev"}: pxe, disk or
// none (HIL's IPMI OBM), else 400 BadArgumentError.
func (s *Server) setBootDevice(ctx context.Context, c *call) (reply, error) {
	n, err := s.powerNode(ctx, c)
	if err != nil {
		return reply{}, err
	}
	dev := c.str("bootdev")
	if !slices.Contains([]string{BootPXE, BootDisk, BootNone}, dev) {
		return reply{}, errorf(TypeBadArgument, "Invalid boot device %q: want pxe, disk or none", dev)
	}
	if err := s.power.SetBootDevice(ctx, n, dev); err != nil {
		return reply{}, obmError(err)
	}
	return ok200, nil
}
