package core

import (
	"context"

	"github.com/bmi-go/bmi/service/fault"
)

// CheckNetwork checks the NETWORK argument of the original's
// `bmi pro PROJECT NODE IMG NETWORK NIC` and `bmi dpro PROJECT NODE NETWORK
// NIC` (and of its V-A REST fields) against the provisioning network BMI
// attaches nodes to: the same name passes, so old scripts keep working;
// any other name fails with an error that names the network BMI uses, and
// a site where BMI attaches no network (hil.provisioning_network unset)
// refuses every name, since BMI would not do what the argument asks.
func (s *Service) CheckNetwork(ctx context.Context, who Principal, project, network string) error {
	if err := s.member(ctx, who, project); err != nil {
		return err
	}
	if err := ValidateNode("network name", network); err != nil {
		return err
	}
	switch uses := s.cfg.ProvisioningNetwork; {
	case uses == "":
		return fault.Errorf(fault.Invalid, "network %q: this BMI attaches nodes to no provisioning network (hil.provisioning_network is not set); "+
			"connect the NIC in HIL and leave the NETWORK argument out", network)
	case uses != network:
		return fault.Errorf(fault.Invalid, "network %q is not the provisioning network: BMI provisions nodes on %q", network, uses)
	}
	return nil
}
