package cephtest

import (
	"os"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestPrefix(t *testing.T) {
	a, b := Prefix(t), Prefix(t)
	if a == b {
		t.Fatalf("two prefixes are equal: %q", a)
	}
	if len(a) > 32 || !strings.HasPrefix(a, "t") || !strings.HasSuffix(a, "-testprefix-") {
		t.Fatalf("prefix %q: want t<hex>-testprefix-, at most 32 characters", a)
	}
}

// TestLeftoverCheck leaves an image with a snapshot and a lock behind and
// shows that Leftovers reports all three, and that forceRemove cleans up.
func TestLeftoverCheck(t *testing.T) {
	conf, pool, prefix := Pool(t)
	img := prefix + "left"
	for _, args := range [][]string{
		{"create", "--size", "4M", img},
		{"snap", "create", img + "@s1"},
		{"snap", "protect", img + "@s1"},
		{"lock", "add", img, "cookie1"},
	} {
		if _, err := RBD(conf, pool, args...); err != nil {
			t.Fatal(err)
		}
	}
	report, err := Leftovers(conf, pool, prefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"image " + img, "s1", "cookie1"} {
		if !strings.Contains(report, want) {
			t.Errorf("leftover report lacks %q:\n%s", want, report)
		}
	}
	if other, err := Leftovers(conf, pool, Prefix(t)); err != nil || other != "" {
		t.Errorf("another prefix reports %q, %v; want nothing", other, err)
	}
	if err := forceRemove(conf, pool, prefix); err != nil {
		t.Fatal(err)
	}
	if report, err := Leftovers(conf, pool, prefix); err != nil || report != "" {
		t.Fatalf("after forceRemove: %q, %v", report, err)
	}
}
