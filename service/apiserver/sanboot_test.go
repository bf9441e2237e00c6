package apiserver_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/apiserver"
)

// TestSanboot: a disk's answer says where its target is (portal, port,
// LUN, IQN) and never carries the CHAP secret; the sanboot route renders
// iPXE's URI with the ACL and the CHAP user, the secret left out.
func TestSanboot(t *testing.T) {
	e := newEnv(t, true)
	if r := call(t, e, "POST", "/api/v1/projects/tenant-a/disks", "alice", `{"image":"debian","name":"d1"}`); r.status != 201 {
		t.Fatalf("create disk: %d %s", r.status, r.body)
	}
	im, err := e.DB.Image(context.Background(), "tenant-a", "d1")
	if err != nil {
		t.Fatal(err)
	}
	tg, err := e.DB.Target(context.Background(), im.ID)
	if err != nil || tg.CHAPSecret == "" {
		t.Fatalf("target of d1: %+v, %v", tg, err)
	}

	r := call(t, e, "GET", "/api/v1/projects/tenant-a/disks/d1", "alice", "")
	conform(t, "GET", "/api/v1/projects/tenant-a/disks/d1", "", "", r.status, r.header, r.body)
	var d api.Disk
	if err := json.Unmarshal([]byte(r.body), &d); err != nil || d.Target == nil {
		t.Fatalf("disk: %v %s", err, r.body)
	}
	if d.Target.Portal != "192.0.2.10" || d.Target.Port != 3260 || d.Target.LUN != 0 || d.Target.IQN != tg.IQN {
		t.Fatalf("disk's target = %+v, want portal 192.0.2.10, port 3260, LUN 0, IQN %s", *d.Target, tg.IQN)
	}
	if strings.Contains(r.body, tg.CHAPSecret) || strings.Contains(r.body, "secret") {
		t.Fatalf("the disk's answer carries the CHAP secret: %s", r.body)
	}

	r = call(t, e, "GET", "/api/v1/projects/tenant-a/disks/d1/sanboot", "alice", "")
	conform(t, "GET", "/api/v1/projects/tenant-a/disks/d1/sanboot", "", "", r.status, r.header, r.body)
	var sb api.Sanboot
	if err := json.Unmarshal([]byte(r.body), &sb); err != nil {
		t.Fatalf("sanboot: %v %s", err, r.body)
	}
	want := api.Sanboot{URI: "iscsi:192.0.2.10::3260:0:" + tg.IQN, Portal: "192.0.2.10", Port: 3260, LUN: 0,
		IQN: tg.IQN, CHAPUser: tg.CHAPUser, Initiators: []string{}}
	if !reflect.DeepEqual(want, sb) {
		t.Fatalf("sanboot = %+v, want %+v", sb, want)
	}
	if strings.Contains(r.body, tg.CHAPSecret) {
		t.Fatalf("sanboot carries the CHAP secret: %s", r.body)
	}
	for path, user := range map[string]string{
		"/api/v1/projects/tenant-a/disks/d1/sanboot":   "bob", // not a member
		"/api/v1/projects/tenant-a/disks/nope/sanboot": "alice",
	} {
		if r := call(t, e, "GET", path, user, ""); r.status < 400 {
			t.Fatalf("GET %s as %s = %d %s, want an error", path, user, r.status, r.body)
		}
	}
}

// TestSanbootURI: iPXE's URI form, an IPv6 portal in brackets.
func TestSanbootURI(t *testing.T) {
	tests := map[string]struct {
		host string
		port int
		want string
	}{
		"ipv4":      {"10.0.0.1", 3260, "iscsi:10.0.0.1::3260:0:iqn.x:y"},
		"host name": {"bmi.example", 3261, "iscsi:bmi.example::3261:0:iqn.x:y"},
		"ipv6":      {"fd00::1", 3260, "iscsi:[fd00::1]::3260:0:iqn.x:y"},
	}
	for name, tc := range tests {
		if got := apiserver.SanbootURI(tc.host, tc.port, 0, "iqn.x:y"); got != tc.want {
			t.Errorf("%s: SanbootURI(%q, %d) = %q, want %q", name, tc.host, tc.port, got, tc.want)
		}
	}
}
