package store

import (
	"context"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/service/core"
)

// TestImportLegacyAllOrNothing: a batch that fails at its last write
// leaves no row of it; a good one keeps the original's ids, so the next
// id BMI assigns comes after them.
func TestImportLegacyAllOrNothing(t *testing.T) { eachEngine(t, testImportLegacyAllOrNothing) }

func testImportLegacyAllOrNothing(t *testing.T, d testDB) {
	ctx := context.Background()
	s := d.open(t)
	b := LegacyBatch{Source: "bmi.db",
		Projects: []LegacyProject{{LegacyID: 4, Name: "tenant-a"}},
		Images: []LegacyImage{{LegacyID: 9, Project: "tenant-a", Name: "debian", Kind: core.KindImage, CephName: "5img9"},
			{LegacyID: 12, Project: "tenant-a", Name: "node-01", Kind: core.KindDisk, ParentLegacyID: 9, CephName: "5img12"}},
		Boots:    []LegacyBoot{{Node: "node-01", Project: "tenant-a", MAC: "52:54:00:00:00:01", DiskLegacyID: 99}},
		IQN:      func(id int64) string { return core.IQN("iqn.2026-11.org.bmi", "5", id) },
		CHAPUser: func(id int64) string { return "u" },
		Secret:   func() (string, error) { return "s3cret", nil },
	}
	if err := s.ImportLegacy(ctx, b); err == nil || !strings.Contains(err.Error(), "node-01") {
		t.Fatalf("ImportLegacy with a boot config of an unknown disk = %v", err)
	}
	if n, err := s.UnimportedRows(ctx); err != nil || n != 0 {
		t.Fatalf("the failed batch left %d rows (%v)", n, err)
	}
	if ps, _ := s.Projects(ctx); len(ps) != 0 {
		t.Fatalf("the failed batch left projects %v", ps)
	}
	b.Boots[0].DiskLegacyID = 12
	if err := s.ImportLegacy(ctx, b); err != nil {
		t.Fatal(err)
	}
	im, err := s.InsertImage(ctx, core.Image{Project: "tenant-a", Name: "new", Kind: core.KindImage, State: core.StateReady}, "5")
	if err != nil || im.ID != 13 || im.CephName != "5img13" {
		t.Fatalf("the next image = %+v, %v; want id 13 after the kept ones", im, err)
	}
	done, err := s.LegacyImported(ctx)
	if err != nil || done["image"][12] != 12 || done["project"][4] != 4 {
		t.Fatalf("LegacyImported = %v, %v", done, err)
	}
}
