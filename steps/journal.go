package steps

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
)

// Kinds of journal entries: what was created, hence how it is undone.
const (
	OpRBDImage  = "rbd_image" // an RBD image in the site's pool: rbd rm
	OpImage     = "image"     // a BMI image: remove image
	OpSnapshot  = "snapshot"  // a BMI snapshot: remove snapshot
	OpDisk      = "disk"      // a BMI disk: delete disk
	OpProvision = "provision" // a provisioned node: deprovision
	OpBoot      = "boot"      // a node's boot config: clear boot
	OpNetwork   = "network"   // a NIC the suite attached to a HIL network: detach
)

// Entry is one line of a journal: something a scenario created (Op set),
// or the record that entry Seq no longer needs undoing (Done set).
type Entry struct {
	Seq      int    `json:"seq"`
	Run      string `json:"run,omitempty"`
	Scenario string `json:"scenario,omitempty"`
	Op       string `json:"op,omitempty"`
	Project  string `json:"project,omitempty"`
	Name     string `json:"name,omitempty"`
	NIC      string `json:"nic,omitempty"`
	Network  string `json:"network,omitempty"`
	Done     bool   `json:"done,omitempty"`
}

// String describes the entry for logs and errors.
func (e Entry) String() string {
	if e.Project != "" {
		return fmt.Sprintf("%s %s/%s", e.Op, e.Project, e.Name)
	}
	return fmt.Sprintf("%s %s", e.Op, e.Name)
}

// Journal is a run's append-only JSON-lines file of created resources.
// Each entry is written (and synced) before the step acts.
type Journal struct {
	mu   sync.Mutex
	f    *os.File
	run  string
	next int
}

// OpenJournal creates (or appends to) the journal at path for run.
func OpenJournal(path, run string) (*Journal, error) {
	old, err := ReadJournal(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	next := 1
	for _, e := range old {
		next = max(next, e.Seq+1)
	}
	return &Journal{f: f, run: run, next: next}, nil
}

// Add appends e (its Seq and Run are set) and returns it.
func (j *Journal) Add(e Entry) (Entry, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e.Seq, e.Run, e.Done = j.next, j.run, false
	j.next++
	return e, j.write(e)
}

// Finish records that entry seq needs no undoing (undone or removed by
// its scenario).
func (j *Journal) Finish(seq int) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.write(Entry{Seq: seq, Done: true})
}

func (j *Journal) write(e Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if _, err := j.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return j.f.Sync()
}

// Close closes the file.
func (j *Journal) Close() error { return j.f.Close() }

// ReadJournal returns the entries of the journal at path that still need
// undoing, in the order they were written.
func ReadJournal(path string) ([]Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var all []Entry
	done := map[int]bool{}
	sc := bufio.NewScanner(f)
	var torn error
	for line := 1; sc.Scan(); line++ {
		var e Entry
		if len(sc.Bytes()) == 0 {
			continue
		}
		if torn != nil {
			return nil, torn
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// a run killed mid-write leaves a torn last line: ignored
			torn = fmt.Errorf("journal %s line %d: %w", path, line, err)
			continue
		}
		if e.Done {
			done[e.Seq] = true
		} else {
			all = append(all, e)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	out := all[:0]
	for _, e := range all {
		if !done[e.Seq] {
			out = append(out, e)
		}
	}
	return out, nil
}

// Replay undoes entries last-in first-out on site, with negative checks,
// and records each success in j when j is not nil. It goes on after a
// failure and returns every failure joined.
func Replay(ctx context.Context, site *Site, entries []Entry, j *Journal) error {
	u, err := newUndoer(site)
	if err != nil {
		return err
	}
	var errs []error
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if err := u.undo(ctx, e); err != nil {
			errs = append(errs, fmt.Errorf("undo %s: %w", e, err))
			continue
		}
		if j != nil {
			if err := j.Finish(e.Seq); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
