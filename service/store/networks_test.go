package store

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/bmi-go/bmi/service/fault"
)

func TestProjectNetworks(t *testing.T) { eachEngine(t, testProjectNetworks) }

func testProjectNetworks(t *testing.T, d testDB) {
	ctx := context.Background()
	s := d.open(t)
	nets := []string{"prov-1", "prov-2"}
	if _, err := s.ProjectNetwork(ctx, "a"); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("ProjectNetwork before a claim = %v, want not found", err)
	}
	// Concurrent claims for one project all get the same network.
	got := make([]string, 8)
	var wg sync.WaitGroup
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := s.ClaimProjectNetwork(ctx, "a", nets)
			if err != nil {
				t.Errorf("claim: %v", err)
			}
			got[i] = n
		}()
	}
	wg.Wait()
	for _, n := range got {
		if n != got[0] {
			t.Fatalf("concurrent claims of project a = %v, want one network", got)
		}
	}
	b, err := s.ClaimProjectNetwork(ctx, "b", nets)
	if err != nil || b == got[0] {
		t.Fatalf("claim b = %q, %v; want the other network than a's %q", b, err, got[0])
	}
	if _, err := s.ClaimProjectNetwork(ctx, "c", nets); fault.Of(err) != fault.Conflict {
		t.Fatalf("claim c with every network taken = %v, want a conflict", err)
	}
	if err := s.ReleaseProjectNetwork(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if c, err := s.ClaimProjectNetwork(ctx, "c", nets); err != nil || c != got[0] {
		t.Fatalf("claim c after a released = %q, %v; want %q", c, err, got[0])
	}
	if err := s.ReleaseProjectNetwork(ctx, "nobody"); err != nil {
		t.Fatalf("release of a project without a network = %v", err)
	}
}
