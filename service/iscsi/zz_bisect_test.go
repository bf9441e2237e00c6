package iscsi

import (
	"os"
	"os/exec"
	"testing"
)

func TestBisect(t *testing.T) {
	tests := os.Getenv("CU_TESTS")
	if tests == "" {
		t.Skip()
	}
	tg, addr := startTarget(t, Config{})
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: newMemVolume(64 << 20)})
	u := url(addr, testIQN(1), nil)
	cmd := exec.Command("iscsi-test-cu", "-d", "-S", "-V", "-i", initiatorIQN, "-I", initiatorIQN+"-2", "-t", tests, u, u)
	out, _ := cmd.CombinedOutput()
	os.WriteFile(os.Getenv("CU_OUT"), out, 0o644)
}
