package hilmock

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"

	"gopkg.in/yaml.v3"
)

// Inventory is what hil-mock is seeded with: the site's projects, users,
// nodes (with NICs and hardware facts) and networks. See
// configs/hil-mock.example.yaml for a documented example.
type Inventory struct {
	// VLANPool is the range networks created with net_id "" get their VLAN
	// from (HIL's vlan_pool allocator). Zero means 1000-1999.
	VLANPool VLANRange       `yaml:"vlan_pool"`
	Projects []string        `yaml:"projects"`
	Users    []InventoryUser `yaml:"users"`
	Nodes    []InventoryNode `yaml:"nodes"`
	Networks []InventoryNet  `yaml:"networks"`
}

// VLANRange is an inclusive range of VLAN ids.
type VLANRange struct {
	First int `yaml:"first"`
	Last  int `yaml:"last"`
}

// InventoryUser is a HIL user.
type InventoryUser struct {
	Name string `yaml:"name"`
	// PasswordHash is the stored form (hil-mock hash-password prints it).
	PasswordHash string `yaml:"password_hash"`
	// Password is a plain-text password, for test and lab inventories
	// only; give PasswordHash or Password, not both.
	Password string   `yaml:"password"`
	Admin    bool     `yaml:"admin"`
	Projects []string `yaml:"projects"`
}

// InventoryNode is a node with its NICs and hardware facts.
type InventoryNode struct {
	Name string `yaml:"name"`
	// Project owning the node; empty: a free node.
	Project string `yaml:"project"`
	// PowerAddress is handed to the power driver (the lab: a libvirt domain).
	PowerAddress string `yaml:"power_address"`
	Hardware     `yaml:",inline"`
	// Metadata are extra HIL metadata (label → any JSON value).
	Metadata map[string]any `yaml:"metadata"`
	NICs     []InventoryNIC `yaml:"nics"`
}

// InventoryNIC is a node's NIC.
type InventoryNIC struct {
	Label string `yaml:"label"`
	MAC   string `yaml:"mac"`
	// Port and Switch say where the NIC is cabled; Port is handed to the
	// switch driver (the lab: the tap's name).
	Port   string `yaml:"port"`
	Switch string `yaml:"switch"`
}

// InventoryNet is a VLAN network.
type InventoryNet struct {
	Name string `yaml:"name"`
	VLAN int    `yaml:"vlan"`
	// Owner is "admin" (or empty) or a project.
	Owner string `yaml:"owner"`
	// Access lists the projects that may connect NICs; empty: public.
	Access []string `yaml:"access"`
}

// ReadInventory reads and validates an inventory file.
func ReadInventory(path string) (*Inventory, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read inventory: %w", err)
	}
	inv, err := ParseInventory(b)
	if err != nil {
		return nil, fmt.Errorf("inventory %s: %w", path, err)
	}
	return inv, nil
}

// ParseInventory decodes YAML (unknown keys are errors) and validates it.
func ParseInventory(b []byte) (*Inventory, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var inv Inventory
	if err := dec.Decode(&inv); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if err := inv.Validate(); err != nil {
		return nil, err
	}
	return &inv, nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`)

// checkName refuses names hil-mock cannot put in a URL path segment.
func checkName(what, name string) error {
	if !nameRE.MatchString(name) {
		return errorf(TypeBadArgument, "%s name %q: want 1-128 letters, digits, '.', '_', ':', '@' or '-', starting with a letter or digit", what, name)
	}
	return nil
}

// Validate checks names, references, MACs, VLANs and duplicates.
func (inv *Inventory) Validate() error {
	p := inv.pool()
	if p.First < 1 || p.Last > 4094 || p.First > p.Last {
		return fmt.Errorf("vlan_pool %d-%d: want 1 <= first <= last <= 4094", p.First, p.Last)
	}
	projects := map[string]bool{}
	for _, name := range inv.Projects {
		if err := checkName("project", name); err != nil {
			return err
		}
		if projects[name] {
			return fmt.Errorf("project %q listed twice", name)
		}
		projects[name] = true
	}
	known := func(what, p string) error {
		if !projects[p] {
			return fmt.Errorf("%s: project %q is not in projects", what, p)
		}
		return nil
	}
	users := map[string]bool{}
	for _, u := range inv.Users {
		if err := checkName("user", u.Name); err != nil {
			return err
		}
		if users[u.Name] {
			return fmt.Errorf("user %q listed twice", u.Name)
		}
		users[u.Name] = true
		switch {
		case u.Password != "" && u.PasswordHash != "":
			return fmt.Errorf("user %q: give password_hash or password, not both", u.Name)
		case u.Password == "" && u.PasswordHash == "":
			return fmt.Errorf("user %q: password_hash (or password) is required", u.Name)
		case u.PasswordHash != "":
			if err := CheckPasswordHash(u.PasswordHash); err != nil {
				return fmt.Errorf("user %q: %w", u.Name, err)
			}
		}
		for _, p := range u.Projects {
			if err := known("user "+strconv.Quote(u.Name), p); err != nil {
				return err
			}
		}
	}
	nodes, macs := map[string]bool{}, map[string]string{}
	for _, n := range inv.Nodes {
		if err := checkName("node", n.Name); err != nil {
			return err
		}
		if nodes[n.Name] {
			return fmt.Errorf("node %q listed twice", n.Name)
		}
		nodes[n.Name] = true
		if n.Project != "" {
			if err := known("node "+strconv.Quote(n.Name), n.Project); err != nil {
				return err
			}
		}
		if n.CPUs < 0 || n.MemoryMiB < 0 || n.LocalDiskGiB < 0 {
			return fmt.Errorf("node %q: cpus, memory_mib and local_disk_gib cannot be negative", n.Name)
		}
		for _, k := range []string{"cpus", "memory_mib", "local_disk_gib"} {
			if _, ok := n.Metadata[k]; ok {
				return fmt.Errorf("node %q: %s is a node field, not metadata", n.Name, k)
			}
		}
		labels := map[string]bool{}
		for _, c := range n.NICs {
			if err := checkName("nic", c.Label); err != nil {
				return fmt.Errorf("node %q: %w", n.Name, err)
			}
			if labels[c.Label] {
				return fmt.Errorf("node %q: nic %q listed twice", n.Name, c.Label)
			}
			labels[c.Label] = true
			hw, err := net.ParseMAC(c.MAC)
			if err != nil || len(hw) != 6 {
				return fmt.Errorf("node %q nic %q: %q is not a MAC address", n.Name, c.Label, c.MAC)
			}
			if other, dup := macs[hw.String()]; dup {
				return fmt.Errorf("node %q nic %q: MAC %s is also %s's", n.Name, c.Label, c.MAC, other)
			}
			macs[hw.String()] = n.Name + "/" + c.Label
		}
	}
	nets, vlans := map[string]bool{}, map[int]string{}
	for _, w := range inv.Networks {
		if err := checkName("network", w.Name); err != nil {
			return err
		}
		if nets[w.Name] {
			return fmt.Errorf("network %q listed twice", w.Name)
		}
		nets[w.Name] = true
		if w.VLAN < 1 || w.VLAN > 4094 {
			return fmt.Errorf("network %q: vlan %d: want 1-4094", w.Name, w.VLAN)
		}
		if other, dup := vlans[w.VLAN]; dup {
			return fmt.Errorf("network %q: vlan %d is also network %q's", w.Name, w.VLAN, other)
		}
		vlans[w.VLAN] = w.Name
		if w.Owner != "" && w.Owner != "admin" {
			if err := known("network "+strconv.Quote(w.Name), w.Owner); err != nil {
				return err
			}
		}
		for _, p := range w.Access {
			if err := known("network "+strconv.Quote(w.Name), p); err != nil {
				return err
			}
		}
	}
	return nil
}

func (inv *Inventory) pool() VLANRange {
	if inv.VLANPool == (VLANRange{}) {
		return VLANRange{First: 1000, Last: 1999}
	}
	return inv.VLANPool
}

// vlanPool reads the pool range the inventory set (default 1000-1999).
func vlanPool(ctx context.Context, q querier) (int, int, error) {
	var s string
	err := q.QueryRowContext(ctx, "SELECT value FROM settings WHERE key = 'vlan_pool'").Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return 1000, 1999, nil
	}
	if err != nil {
		return 0, 0, err
	}
	var r [2]int
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return 0, 0, fmt.Errorf("stored vlan_pool %q: %w", s, err)
	}
	return r[0], r[1], nil
}

// Seed adds what the inventory lists and the database lacks, in one
// transaction: objects that exist already (by name) are left as they are,
// so seeding twice changes nothing. It returns how many objects it added.
func (s *Server) Seed(ctx context.Context, inv *Inventory) (int, error) {
	return seed(ctx, s.db, inv)
}

// SeedDB seeds the database at dbPath (created and migrated if needed)
// without serving it, as Server.Seed does.
func SeedDB(ctx context.Context, dbPath string, inv *Inventory) (int, error) {
	db, _, err := openDB(ctx, dbPath)
	if err != nil {
		return 0, err
	}
	n, err := seed(ctx, db, inv)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return n, err
}

func seed(ctx context.Context, db *sql.DB, inv *Inventory) (int, error) {
	if err := inv.Validate(); err != nil {
		return 0, err
	}
	// Hash outside the transaction: it is the slow part.
	hashes := map[string]string{}
	for _, u := range inv.Users {
		h := u.PasswordHash
		if h == "" {
			var err error
			if h, err = HashPassword(u.Password); err != nil {
				return 0, err
			}
		}
		hashes[u.Name] = h
	}
	added := 0
	err := inTx(ctx, db, func(tx *sql.Tx) error {
		added = 0
		try := func(err error) error {
			var ae *apiError
			if errors.As(err, &ae) && ae.Type == TypeDuplicate {
				return nil
			}
			if err == nil {
				added++
			}
			return err
		}
		p := inv.pool()
		if _, err := tx.ExecContext(ctx, "INSERT OR REPLACE INTO settings (key, value) VALUES ('vlan_pool', ?)", fmt.Sprintf("[%d,%d]", p.First, p.Last)); err != nil {
			return err
		}
		for _, name := range inv.Projects {
			if err := try(insertProject(ctx, tx, name)); err != nil {
				return err
			}
		}
		for _, u := range inv.Users {
			if err := try(insertUser(ctx, tx, u.Name, hashes[u.Name], u.Admin)); err != nil {
				return err
			}
			for _, p := range u.Projects {
				if err := try(addMember(ctx, tx, u.Name, p)); err != nil {
					return err
				}
			}
		}
		for _, n := range inv.Nodes {
			if err := try(seedNode(ctx, tx, n)); err != nil {
				return err
			}
			for _, c := range n.NICs {
				if err := try(insertNIC(ctx, tx, n.Name, c.Label, c.MAC, c.Port, c.Switch)); err != nil {
					return err
				}
			}
		}
		for _, w := range inv.Networks {
			if err := try(seedNetwork(ctx, tx, w, p)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("seed hil-mock: %w", err)
	}
	return added, nil
}

func seedNode(ctx context.Context, tx *sql.Tx, n InventoryNode) error {
	meta := map[string]string{}
	for k, v := range n.Metadata {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("node %q metadata %q: %w", n.Name, k, err)
		}
		meta[k] = string(b)
	}
	for k, v := range map[string]int{"cpus": n.CPUs, "memory_mib": n.MemoryMiB, "local_disk_gib": n.LocalDiskGiB} {
		if v > 0 {
			meta[k] = strconv.Itoa(v)
		}
	}
	if err := insertNode(ctx, tx, n.Name, n.PowerAddress, meta); err != nil {
		return err
	}
	if n.Project != "" {
		_, err := tx.ExecContext(ctx, "UPDATE nodes SET project = ? WHERE name = ?", n.Project, n.Name)
		return err
	}
	return nil
}

func seedNetwork(ctx context.Context, tx *sql.Tx, w InventoryNet, p VLANRange) error {
	if ok, err := exists(ctx, tx, "SELECT 1 FROM networks WHERE name = ?", w.Name); err != nil || ok {
		if ok {
			return errorf(TypeDuplicate, "Network %s already exists.", w.Name)
		}
		return err
	}
	if ok, err := exists(ctx, tx, "SELECT 1 FROM networks WHERE vlan = ?", w.VLAN); err != nil || ok {
		if ok {
			return fmt.Errorf("network %q: vlan %d is used by another network in the database", w.Name, w.VLAN)
		}
		return err
	}
	owner := w.Owner
	if owner == "" {
		owner = "admin"
	}
	access := slices.Clone(w.Access)
	slices.Sort(access)
	return insertNetwork(ctx, tx, w.Name, owner, w.VLAN, w.VLAN >= p.First && w.VLAN <= p.Last, access)
}
