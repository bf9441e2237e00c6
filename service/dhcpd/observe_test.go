package dhcpd

import (
	"os"
	"regexp"
	"testing"
)

// TestIgnoreReasons: every message the server logs for an ignored packet
// sorts into a reason of its own (a new message needs a row in
// ignoreReasons, or its packets count as "other").
func TestIgnoreReasons(t *testing.T) {
	src, err := os.ReadFile("handle.go")
	if err != nil {
		t.Fatal(err)
	}
	msgs := regexp.MustCompile(`s\.ignored\(log, "([^"]+)"`).FindAllSubmatch(src, -1)
	if len(msgs) < 8 {
		t.Fatalf("found %d ignore messages in handle.go, want the 8 or more there are", len(msgs))
	}
	for _, m := range msgs {
		if r := ignoreReason(string(m[1])); r == "other" {
			t.Errorf("ignore message %q has no reason", m[1])
		}
	}
	for msg, want := range map[string]string{
		"ignoring dhcp from a MAC without a boot config":                    "unknown_mac",
		"ignoring dhcp: no iPXE binary for client architecture EFI x64":     "no_boot_file",
		"ignoring dhcp message in proxy mode":                               "proxy_mode",
		"ignoring dhcp from a client that is not a PXE client (proxy mode)": "not_pxe",
		"something new": "other",
	} {
		if got := ignoreReason(msg); got != want {
			t.Errorf("ignoreReason(%q) = %q, want %q", msg, got, want)
		}
	}
}
