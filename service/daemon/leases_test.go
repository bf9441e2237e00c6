package daemon

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/leasetest"
	"github.com/bmi-go/bmi/internal/pgtest"
	"github.com/bmi-go/bmi/service/dhcpd"
	"github.com/bmi-go/bmi/service/logging"
	"github.com/bmi-go/bmi/service/store"
)

// TestLeasesContract runs the DHCP lease-table contract against the state
// database, the table bmid's DHCP server really uses, on SQLite and on
// PostgreSQL.
func TestLeasesContract(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		leasetest.Run(t, func(t *testing.T) dhcpd.Leases {
			db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "bmi.db"), logging.Discard())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return leases{s: db, now: time.Now}
		})
	})
	t.Run("postgres", func(t *testing.T) {
		leasetest.Run(t, func(t *testing.T) dhcpd.Leases {
			db, err := store.OpenPostgres(context.Background(), pgtest.Database(t), logging.Discard())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return leases{s: db, now: time.Now}
		})
	})
}
