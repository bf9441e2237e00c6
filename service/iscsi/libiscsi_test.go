package iscsi

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/internal/testenv"
)

// Real initiators: libiscsi's command-line tools (Debian libiscsi-bin)
// against the target on 127.0.0.1.

const initiatorIQN = "iqn.2026-11.org.test:libiscsi"

func runTool(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	testenv.RequireCommand(t, name, "libiscsi-bin")
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func url(addr, iqn string, c *CHAP) string {
	cred := ""
	if c != nil {
		cred = c.User + "%" + c.Secret + "@"
	}
	u := "iscsi://" + cred + addr
	if iqn != "" {
		u += "/" + iqn + "/0"
	}
	return u
}

// TestLibiscsiTools: discovery, inquiry and capacity with CHAP and ACLs.
func TestLibiscsiTools(t *testing.T) {
	testenv.RequireCommand(t, "iscsi-ls", "libiscsi-bin")
	tg, addr := startTarget(t, Config{})
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: newMemVolume(64 << 20), CHAP: nodeCHAP, Initiators: []string{initiatorIQN}})
	mustExport(t, tg, Export{IQN: testIQN(2), Volume: newMemVolume(32 << 20), Initiators: []string{initiatorIQN}})
	mustExport(t, tg, Export{IQN: testIQN(3), Volume: newMemVolume(16 << 20), Initiators: []string{"iqn.2026-11.org.test:someone-else"}})

	t.Run("discovery without chap", func(t *testing.T) {
		out, err := runTool(t, "iscsi-ls", "-i", initiatorIQN, url(addr, "", nil))
		if err != nil || !strings.Contains(out, testIQN(2)) || strings.Contains(out, testIQN(1)) || strings.Contains(out, testIQN(3)) {
			t.Fatalf("iscsi-ls: %v\n%s", err, out)
		}
	})
	t.Run("discovery with chap", func(t *testing.T) {
		out, err := runTool(t, "iscsi-ls", "-i", initiatorIQN, url(addr, "", nodeCHAP))
		if err != nil || !strings.Contains(out, testIQN(1)) || !strings.Contains(out, testIQN(2)) || strings.Contains(out, testIQN(3)) {
			t.Fatalf("iscsi-ls with CHAP: %v\n%s", err, out)
		}
	})
	t.Run("discovery wrong chap", func(t *testing.T) {
		out, err := runTool(t, "iscsi-ls", "-i", initiatorIQN, url(addr, "", &CHAP{User: "node7", Secret: "not-the-secret"}))
		if err == nil || strings.Contains(out, testIQN(1)) {
			t.Fatalf("iscsi-ls with a wrong secret succeeded:\n%s", out)
		}
	})
	t.Run("capacity with chap", func(t *testing.T) {
		out, err := runTool(t, "iscsi-readcapacity16", "-i", initiatorIQN, url(addr, testIQN(1), nodeCHAP))
		if err != nil || !strings.Contains(out, "Total size:67108864") {
			t.Fatalf("iscsi-readcapacity16: %v\n%s", err, out)
		}
	})
	t.Run("inquiry", func(t *testing.T) {
		out, err := runTool(t, "iscsi-inq", "-i", initiatorIQN, url(addr, testIQN(2), nil))
		if err != nil || !strings.Contains(out, "DIRECT_ACCESS") || !strings.Contains(out, "Vendor:BMI") {
			t.Fatalf("iscsi-inq: %v\n%s", err, out)
		}
	})
	t.Run("wrong chap refused", func(t *testing.T) {
		out, err := runTool(t, "iscsi-readcapacity16", "-i", initiatorIQN, url(addr, testIQN(1), &CHAP{User: "node7", Secret: "not-the-secret"}))
		if err == nil {
			t.Fatalf("login with a wrong secret succeeded:\n%s", out)
		}
	})
	t.Run("no chap refused", func(t *testing.T) {
		out, err := runTool(t, "iscsi-readcapacity16", "-i", initiatorIQN, url(addr, testIQN(1), nil))
		if err == nil {
			t.Fatalf("login without CHAP succeeded:\n%s", out)
		}
	})
	t.Run("foreign initiator refused and not listed", func(t *testing.T) {
		out, err := runTool(t, "iscsi-readcapacity16", "-i", "iqn.2026-11.org.test:intruder", url(addr, testIQN(2), nil))
		if err == nil {
			t.Fatalf("foreign initiator logged in:\n%s", out)
		}
		out, err = runTool(t, "iscsi-ls", "-i", "iqn.2026-11.org.test:intruder", url(addr, "", nil))
		if err != nil || strings.Contains(out, "Target:") {
			t.Fatalf("foreign initiator's discovery: %v\n%s", err, out)
		}
	})
}
