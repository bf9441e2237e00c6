package legacy

import (
	"fmt"
	"io"
)

// Report says what a migration took over and what needs a hand.
type Report struct {
	// DryRun: nothing was written.
	DryRun bool
	// Source is the original's database.
	Source string
	// Nothing: every row was brought over by an earlier run.
	Nothing bool
	// Projects, Images, Snapshots, Disks and Boots were taken over (or
	// would be, in a dry run).
	Projects, Images, Snapshots, Disks, Boots []string
	// Skipped were brought over by an earlier run.
	Skipped []string
	// Hand lists what an operator has to do.
	Hand []string
}

// Write prints the report as plain text.
func (r Report) Write(w io.Writer) error {
	verb := "taken over"
	if r.DryRun {
		verb = "would be taken over (dry run: nothing written)"
	}
	if _, err := fmt.Fprintf(w, "migrate-legacy from %s\n", r.Source); err != nil {
		return err
	}
	if r.Nothing {
		_, err := fmt.Fprintf(w, "nothing to do: all %d rows were taken over by an earlier run\n", len(r.Skipped))
		return err
	}
	for _, sec := range []struct {
		name  string
		items []string
	}{{"projects " + verb, r.Projects}, {"images " + verb, r.Images}, {"snapshots " + verb, r.Snapshots},
		{"disks " + verb + " (each gets a target of bmid's)", r.Disks}, {"boot configs " + verb, r.Boots},
		{"already taken over by an earlier run", r.Skipped}, {"needs a hand", r.Hand}} {
		if _, err := fmt.Fprintf(w, "%s: %d\n", sec.name, len(sec.items)); err != nil {
			return err
		}
		for _, it := range sec.items {
			if _, err := fmt.Fprintf(w, "  - %s\n", it); err != nil {
				return err
			}
		}
	}
	return nil
}
