package lab

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestSecondTenant: the lab's inventory has a second tenant, a member of
// its own project only, whose project owns no node; a lab made before the
// second tenant existed gets its password on the next read, keeping the
// others.
func TestSecondTenant(t *testing.T) {
	dir := t.TempDir()
	old := `{"hil_admin_password": "a", "hil_bmi_password": "b", "hil_user_password": "u"}`
	if err := os.WriteFile(filepath.Join(dir, "credentials.json"), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	l := &Lab{State: State{Name: "t", Dir: dir, Nodes: []Node{{Name: "node-01", MAC: "52:54:00:00:00:01", Tap: "tap1", Domain: "d1"}}}}
	c, err := l.Credentials()
	if err != nil {
		t.Fatal(err)
	}
	if c.HILAdmin != "a" || c.HILUser != "u" || len(c.OtherUser) < 16 {
		t.Fatalf("credentials after upgrade: %+v", c)
	}
	if again, _ := l.Credentials(); again != c {
		t.Fatalf("the second tenant's password changed between reads: %+v, %+v", c, again)
	}
	inv, err := l.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(inv.Projects, OtherProject) {
		t.Errorf("projects %v lack %s", inv.Projects, OtherProject)
	}
	var other bool
	for _, u := range inv.Users {
		if u.Name == OtherUser {
			other = u.Password == c.OtherUser && slices.Equal(u.Projects, []string{OtherProject}) && !u.Admin
		}
	}
	if !other {
		t.Errorf("no user %s in %s only: %+v", OtherUser, OtherProject, inv.Users)
	}
	for _, n := range inv.Nodes {
		if n.Project != Project {
			t.Errorf("node %s is %s's, want every node %s's", n.Name, n.Project, Project)
		}
	}
}
