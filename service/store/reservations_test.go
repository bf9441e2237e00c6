package store

import (
	"context"
	"testing"

	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
)

// reservedIQN is the target of the disk reservedDisk records.
const reservedIQN = "iqn.2026-11.org.bmi:u1.2"

// reservedDisk records a project, an image, a disk of it and the disk's
// target (reservedIQN), and returns the disk.
func reservedDisk(t *testing.T, s *DB) core.Image {
	t.Helper()
	ctx := context.Background()
	if _, err := s.CreateProject(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	img, err := s.InsertImage(ctx, core.Image{Project: "p", Name: "deb", Kind: core.KindImage, State: core.StateReady}, "u1")
	if err != nil {
		t.Fatal(err)
	}
	disk, err := s.InsertImage(ctx, core.Image{Project: "p", Name: "d", Kind: core.KindDisk, ParentID: img.ID, State: core.StateReady}, "u1")
	if err != nil {
		t.Fatal(err)
	}
	const reservedIQN = "iqn.2026-11.org.bmi:u1.2"
	if err := s.PutTarget(ctx, core.Target{DiskID: disk.ID, IQN: reservedIQN, CHAPUser: "u", CHAPSecret: "s"}); err != nil {
		t.Fatal(err)
	}
	return disk
}

// TestReservations: the state survives closing and reopening the
// database, is replaced by a save, needs a recorded target, and goes with
// the target's row (deprovisioning releases the reservations).
func TestReservations(t *testing.T) { eachEngine(t, testReservations) }

func testReservations(t *testing.T, d testDB) {
	ctx := context.Background()
	s := d.open(t)
	disk := reservedDisk(t, s)
	if got, err := s.LoadReservations(ctx, reservedIQN); err != nil || got != nil {
		t.Fatalf("LoadReservations before any save = %q, %v; want nil, nil", got, err)
	}
	for _, state := range []string{`{"generation":1}`, `{"generation":2,"type":1}`} {
		if err := s.SaveReservations(ctx, reservedIQN, []byte(state)); err != nil {
			t.Fatalf("SaveReservations(%s): %v", state, err)
		}
	}
	if err := s.SaveReservations(ctx, "iqn.2026-11.org.bmi:u1.99", []byte(`{}`)); fault.Of(err) != fault.Conflict {
		t.Fatalf("SaveReservations of an unknown target: %v, want a conflict", err)
	}
	s.Close()

	s = d.open(t) // a restart of bmid
	if got, err := s.LoadReservations(ctx, reservedIQN); err != nil || string(got) != `{"generation":2,"type":1}` {
		t.Fatalf("LoadReservations after reopen = %q, %v", got, err)
	}
	if err := s.DeleteTarget(ctx, disk.ID); err != nil { // deprovision
		t.Fatal(err)
	}
	if got, err := s.LoadReservations(ctx, reservedIQN); err != nil || got != nil {
		t.Fatalf("LoadReservations after the target's deletion = %q, %v; want nil", got, err)
	}
	if err := s.DeleteReservations(ctx, reservedIQN); err != nil {
		t.Fatalf("DeleteReservations of nothing: %v", err)
	}
}

// TestReservationsFenced: a gateway saves the reservations of a disk
// placed on it (or placed nowhere), never of one placed on another
// gateway: a gateway that was paused while another took its disks over
// cannot overwrite the reservations the new owner keeps. A bmid that is
// no gateway saves as before.
func TestReservationsFenced(t *testing.T) { eachEngine(t, testReservationsFenced) }

func testReservationsFenced(t *testing.T, d testDB) {
	ctx := context.Background()
	s := d.open(t)
	reservedDisk(t, s)
	a := groupGateway(t, d.open(t), "gw-a", "rack1", "10.0.0.10:3260", 0)
	b := groupGateway(t, d.open(t), "gw-b", "rack1", "10.0.0.10:3260", 0)
	if err := a.db.SaveReservations(ctx, reservedIQN, []byte(`{"generation":1}`)); err != nil {
		t.Fatalf("a gateway saves the reservations of a disk placed nowhere: %v", err)
	}
	if p, err := b.Place(ctx, reservedIQN); err != nil || p.Gateway != "gw-b" {
		t.Fatalf("place on gw-b: %+v, %v", p, err)
	}
	if err := a.db.SaveReservations(ctx, reservedIQN, []byte(`{"generation":9}`)); fault.Of(err) != fault.Conflict {
		t.Fatalf("gw-a saves the reservations of a disk placed on gw-b: %v; want a conflict", err)
	}
	if err := b.db.SaveReservations(ctx, reservedIQN, []byte(`{"generation":2}`)); err != nil {
		t.Fatalf("the owner saves: %v", err)
	}
	if got, err := s.LoadReservations(ctx, reservedIQN); err != nil || string(got) != `{"generation":2}` {
		t.Fatalf("after the owner's save: %q, %v", got, err)
	}
	if err := s.SaveReservations(ctx, reservedIQN, []byte(`{"generation":3}`)); err != nil {
		t.Fatalf("a bmid that is no gateway: %v", err)
	}
}
