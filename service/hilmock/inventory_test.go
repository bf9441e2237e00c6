package hilmock

import (
	"strings"
	"testing"
)

func TestExampleInventory(t *testing.T) {
	inv, err := ReadInventory(exampleInventory)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Projects) != 3 || len(inv.Users) < 3 || len(inv.Nodes) < 3 || len(inv.Networks) < 2 {
		t.Fatalf("example inventory too small: %+v", inv)
	}
	for _, n := range inv.Nodes {
		for _, c := range n.NICs {
			if !strings.HasPrefix(c.MAC, "52:54:00:") {
				t.Errorf("node %s nic %s: MAC %s outside 52:54:00", n.Name, c.Label, c.MAC)
			}
		}
	}
}

func TestInventoryErrors(t *testing.T) {
	base := `projects: [p]
users: [{name: u, password: x, projects: [p]}]
nodes: [{name: n, project: p, nics: [{label: eth0, mac: "52:54:00:00:00:01"}]}]
networks: [{name: w, vlan: 10, owner: p, access: [p]}]
`
	if _, err := ParseInventory([]byte(base)); err != nil {
		t.Fatalf("base inventory: %v", err)
	}
	tests := map[string]struct {
		yaml, want string
	}{
		"unknown key":          {`projects: [p]` + "\nfoo: 1\n", "field foo not found"},
		"bad yaml":             {"projects: [", "decode"},
		"duplicate project":    {"projects: [p, p]", "listed twice"},
		"bad project name":     {"projects: ['a/b']", "project name"},
		"user without pw":      {"users: [{name: u}]", "password_hash (or password) is required"},
		"user both pw":         {"users: [{name: u, password: x, password_hash: y}]", "not both"},
		"user bad hash":        {"users: [{name: u, password_hash: md5}]", "password hash"},
		"user unknown project": {"users: [{name: u, password: x, projects: [q]}]", `project "q" is not in projects`},
		"node unknown project": {"nodes: [{name: n, project: q}]", `project "q"`},
		"node negative cpus":   {"nodes: [{name: n, cpus: -1}]", "negative"},
		"node hw in metadata":  {"nodes: [{name: n, metadata: {cpus: 2}}]", "node field"},
		"bad mac":              {`nodes: [{name: n, nics: [{label: e, mac: "zz"}]}]`, "not a MAC"},
		"short mac":            {`nodes: [{name: n, nics: [{label: e, mac: "00:11:22:33:44:55:66:77"}]}]`, "not a MAC"},
		"duplicate mac": {`nodes: [{name: n, nics: [{label: e, mac: "52:54:00:00:00:01"}]}, {name: m, nics: [{label: e, mac: "52:54:00:00:00:01"}]}]`,
			"also n/e's"},
		"duplicate nic":     {`nodes: [{name: n, nics: [{label: e, mac: "52:54:00:00:00:01"}, {label: e, mac: "52:54:00:00:00:02"}]}]`, "listed twice"},
		"vlan out of range": {"networks: [{name: w, vlan: 4095}]", "want 1-4094"},
		"duplicate vlan":    {"networks: [{name: w, vlan: 5}, {name: v, vlan: 5}]", "also network"},
		"network unknown":   {"networks: [{name: w, vlan: 5, access: [q]}]", `project "q"`},
		"bad pool":          {"vlan_pool: {first: 10, last: 5}", "vlan_pool"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseInventory([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(h, "s3cret") || CheckPasswordHash(h) != nil {
		t.Fatalf("hash %q", h)
	}
	if !verifyPassword(h, "s3cret") || verifyPassword(h, "s3cret ") || verifyPassword("junk", "s3cret") {
		t.Fatal("verifyPassword wrong")
	}
	h2, _ := HashPassword("s3cret")
	if h == h2 {
		t.Fatal("same hash twice: salt not random")
	}
}

// FuzzParseInventory: any input is either refused with an error or gives
// an inventory that validates; never a panic.
func FuzzParseInventory(f *testing.F) {
	f.Add([]byte("projects: [p]\nnodes: [{name: n, project: p, nics: [{label: e, mac: \"52:54:00:00:00:01\"}]}]"))
	f.Add([]byte("networks: [{name: w, vlan: 10}]\nvlan_pool: {first: 1, last: 2}"))
	f.Add([]byte("users: [{name: u, password_hash: \"pbkdf2-sha256$1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA\"}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		inv, err := ParseInventory(b)
		if err != nil {
			return
		}
		if err := inv.Validate(); err != nil {
			t.Fatalf("parsed inventory does not validate: %v", err)
		}
	})
}

// FuzzDecodeArgs: request bodies are refused with a ValidationError or
// give arguments that fit the schema.
func FuzzDecodeArgs(f *testing.F) {
	f.Add("POST", `{"network":"n","channel":"vlan/native"}`)
	f.Add("POST", `{"network":5}`)
	f.Add("GET", ``)
	f.Add("POST", `[1,2]`)
	f.Add("POST", `null`)
	sch := schema{"network": argString, "channel": argOptString, "force": argOptBool, "obm": argOptObject}
	f.Fuzz(func(t *testing.T, method, body string) {
		if method != "GET" {
			method = "POST"
		}
		r := httptestRequest(method, "/v0/node/n/nic/e/connect_network", body)
		args, err := decodeArgs(r, []string{"node", "nic"}, sch)
		if err != nil {
			if ae, ok := err.(*apiError); !ok || ae.Type != TypeValidation {
				t.Fatalf("error %v, want a ValidationError", err)
			}
			return
		}
		if _, ok := args["network"].(string); !ok {
			t.Fatalf("accepted %q without a string network: %v", body, args)
		}
		for k := range args {
			if _, known := sch[k]; !known {
				t.Fatalf("accepted unknown argument %q", k)
			}
		}
	})
}
