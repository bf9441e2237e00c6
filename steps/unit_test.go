package steps

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// BMI's image name rule (service/core): random names must satisfy it,
// so a failing randomised round points at a name-handling bug.
var bmiName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func FuzzRandomName(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Fuzz(func(t *testing.T, a, b uint64) {
		n := RandomName(rand.New(rand.NewPCG(a, b)))
		if len(n) < 10 || len(n) > 15 || !bmiName.MatchString(n) || n[:len(Prefix)] != Prefix {
			t.Fatalf("RandomName = %q", n)
		}
	})
}

func TestNamer(t *testing.T) {
	n := NewNamer("r1", nil)
	if a, b := n.Name("golden"), n.Name("golden"); a != b || a != "uat-r1-golden" {
		t.Errorf("Name(golden) = %q then %q", a, b)
	}
	r := NewNamer("r1", rand.New(rand.NewPCG(7, 7)))
	r2 := NewNamer("r1", rand.New(rand.NewPCG(7, 7)))
	if a, b := r.Name("x"), r2.Name("x"); a != b {
		t.Errorf("same seed, different names: %q %q", a, b)
	}
	if r.Name("x") == r.Name("y") {
		t.Error("two aliases got one name")
	}
}

func TestJournal(t *testing.T) {
	p := filepath.Join(t.TempDir(), "journal.jsonl")
	j, err := OpenJournal(p, "run1")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := j.Add(Entry{Op: OpRBDImage, Name: "uat-a"})
	b, _ := j.Add(Entry{Op: OpImage, Project: "p", Name: "uat-b"})
	if err := j.Finish(a.Seq); err != nil {
		t.Fatal(err)
	}
	j.Close()
	// a run killed mid-write leaves a torn last line
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"seq":3,"op":"ima`)
	f.Close()
	left, err := ReadJournal(p)
	if err != nil || len(left) != 1 || left[0].Seq != b.Seq || left[0].Name != "uat-b" {
		t.Fatalf("ReadJournal = %+v, %v; want only entry %d", left, err, b.Seq)
	}
	j2, err := OpenJournal(p, "run2")
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := j2.Add(Entry{Op: OpDisk, Name: "uat-c"}); c.Seq <= b.Seq {
		t.Errorf("reopened journal reuses seq %d", c.Seq)
	}
	j2.Close()
}

func TestParseBootScript(t *testing.T) {
	tests := map[string]bootScript{
		"chap.ipxe":     {Target: "iqn.2026-11.org.bmi:lab.7", LUN: 1, Initiator: "iqn.2026-11.org.bmi:node1", User: "node1", Secret: "Zx9-secret.42"},
		"hexchap.ipxe":  {Target: "iqn.2026-11.org.bmi:lab.7", LUN: 1, Initiator: "iqn.2026-11.org.bmi:node1", User: "node one", Secret: "p$a{s}s w\nx"},
		"noconfig.ipxe": {NoConfig: true},
	}
	for file, want := range tests {
		t.Run(file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("../service/ipxe/testdata", file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseBootScript(string(b))
			if err != nil {
				t.Fatal(err)
			}
			got.Text = ""
			if got != want {
				t.Errorf("parseBootScript(%s) = %+v, want %+v", file, got, want)
			}
		})
	}
	if _, err := parseBootScript("#!ipxe\necho hello\n"); err == nil {
		t.Error("a script without sanboot or the no-config message parsed")
	}
}
