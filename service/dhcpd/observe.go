package dhcpd

import "strings"

// Observer hears what the server answers and ignores, for metrics. Its
// methods must be quick and safe for concurrent use.
type Observer interface {
	// Reply reports an answer sent: messageType is "offer", "ack" or "nak".
	Reply(messageType string)
	// Ignored reports a packet left unanswered, with one of the reasons of
	// ignoreReasons (or "other").
	Ignored(reason string)
}

// ignoreReasons sorts the log messages of ignored packets into a few
// reasons (bounded label values), by a fragment of the message.
var ignoreReasons = []struct{ fragment, reason string }{
	{"malformed", "malformed"},
	{"not a request", "not_request"},
	{"without an ethernet MAC", "not_ethernet"},
	{"message type", "message_type"},
	{"without a boot config", "unknown_mac"},
	{"not a PXE client", "not_pxe"},
	{"proxy mode", "proxy_mode"},
	{"for another server", "other_server"},
	{"ignoring dhcp: ", "no_boot_file"},
}

// ignoreReason returns the reason of the ignore message msg.
func ignoreReason(msg string) string {
	for _, r := range ignoreReasons {
		if strings.Contains(msg, r.fragment) {
			return r.reason
		}
	}
	return "other"
}
