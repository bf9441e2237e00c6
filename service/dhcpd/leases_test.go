package dhcpd_test

import (
	"testing"

	"github.com/bmi-go/bmi/internal/leasetest"
	"github.com/bmi-go/bmi/service/dhcpd"
)

func TestMemoryLeasesContract(t *testing.T) {
	leasetest.Run(t, func(*testing.T) dhcpd.Leases { return dhcpd.NewMemoryLeases() })
}
