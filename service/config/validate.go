package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	uidRe      = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
	cephNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	iqnRe      = regexp.MustCompile(`^iqn\.[0-9]{4}-[0-9]{2}\.[a-z0-9][a-z0-9.-]*$`)
	ifaceRe    = regexp.MustCompile(`^[A-Za-z0-9_.:@-]{1,15}$`)
)

// check is one validation rule: a key and the problem with its value, or ""
// when the value is fine.
type check struct {
	key     string
	problem string
}

// Validate checks every key and returns the first problem as an *Error
// naming the key and where (the file, usually).
func (c Config) Validate(where string) error {
	for _, ch := range c.checks() {
		if ch.problem != "" {
			return &Error{Source: where, Key: ch.key, Msg: ch.problem}
		}
	}
	return nil
}

// gatewayRe is a gateway label value.
var gatewayRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,63}$`)

func (c Config) checks() []check {
	out := []check{
		{"uid", match(c.UID, uidRe, "1 to 32 letters, digits, '-' or '_'")},
		{"admin_project", required(c.AdminProject)},
		{"log.format", oneOf(c.Log.Format, "auto", "text", "json")},
		{"log.level", oneOf(c.Log.Level, "debug", "info", "warn", "error")},
		{"api.listen", hostPort(c.API.Listen, true)},
		{"api.tls_cert", pair(c.API.TLSCert, c.API.TLSKey, "api.tls_key")},
		{"api.tls_key", pair(c.API.TLSKey, c.API.TLSCert, "api.tls_cert")},
		{"api.auth_cache_ttl", nonNegative(int64(c.API.AuthCacheTTL))},
		{"api.max_body_bytes", positive(c.API.MaxBodyBytes)},
		{"state.engine", oneOf(c.State.Engine, "sqlite", "postgres")},
		{"ceph.conf", required(c.Ceph.Conf)},
		{"ceph.id", match(c.Ceph.ID, cephNameRe, "a cephx client id such as admin")},
		{"ceph.pool", match(c.Ceph.Pool, cephNameRe, "a pool name of letters, digits, '.', '-' or '_'")},
		{"ceph.snapshot", match(c.Ceph.Snapshot, cephNameRe, "a snapshot name of letters, digits, '.', '-' or '_'")},
		{"ceph.op_timeout", positive(int64(c.Ceph.OpTimeout))},
		{"ceph.busy_wait", nonNegative(int64(c.Ceph.BusyWait))},
		{"hil.url", httpURL(c.HIL.URL, true)},
		{"hil.timeout", positive(int64(c.HIL.Timeout))},
		{"hil.network_timeout", positive(int64(c.HIL.NetworkTimeout))},
		{"hil.channel", required(c.HIL.Channel)},
		{"metrics.gateway", optionalMatch(c.Metrics.Gateway, gatewayRe, "1 to 63 letters, digits, '.', '-' or '_'")},
		{"events.max_clients", between(int64(c.Events.MaxClients), 1, 10000)},
		{"hil.user", pair(c.HIL.User, c.HIL.ProvisioningNetwork, "hil.provisioning_network")},
		{"hil.password_file", pair(c.HIL.PasswordFile, c.HIL.User, "hil.user")},
		{"iscsi.listen", hostPorts(c.ISCSI.Listen)},
		{"iscsi.portal", hostPort(c.ISCSI.Portal, false)},
		{"iscsi.iqn_prefix", match(c.ISCSI.IQNPrefix, iqnRe, "an IQN prefix such as iqn.2026-11.org.example")},
		{"iscsi.drain_timeout", durationBetween(c.ISCSI.DrainTimeout, time.Millisecond, 5*time.Minute)},
		{"iscsi.time2wait", durationBetween(c.ISCSI.Time2Wait, time.Second, time.Hour)},
		{"boot.interfaces", interfaces(c.Boot.Interfaces)},
		{"boot.base_url", httpURL(c.Boot.BaseURL, false)},
		{"boot.http_listen", hostPort(c.Boot.HTTPListen, false)},
		{"boot.http_listen", distinct(c.Boot.HTTPListen, c.API.Listen, "api.listen")},
		{"api.listen", management(c.API.Listen, len(c.Boot.Interfaces) > 0 || c.Boot.HTTPListen != "" || len(c.Boot.Networks) > 0)},
		{"boot.dhcp.mode", oneOf(c.Boot.DHCP.Mode, "server", "proxy")},
		{"boot.dhcp.lease_time", positive(int64(c.Boot.DHCP.LeaseTime))},
		{"boot.dhcp.router", ipv4(c.Boot.DHCP.Router, false)},
		{"boot.dhcp.dns", ipv4List(c.Boot.DHCP.DNS)},
		{"boot.tftp.listen", hostPort(c.Boot.TFTP.Listen, false)},
		{"boot.dhcp.server_ip", ipv4(c.Boot.DHCP.ServerIP, false)},
		{"boot.files.ipxe_interface", optionalMatch(c.Boot.Files.IPXEInterface, ifaceRe, "an interface name such as net0")},
		{"boot.ipxe.attempts", between(int64(c.Boot.IPXE.Attempts), 1, 100)},
		{"boot.ipxe.retry_delay", seconds(c.Boot.IPXE.RetryDelay)},
		{"boot.ipxe.reboot_delay", seconds(c.Boot.IPXE.RebootDelay)},
		{"boot.ipxe.no_config_pause", seconds(c.Boot.IPXE.NoConfigPause)},
		{"boot.faults.dhcp.drop_percent", between(int64(c.Boot.Faults.DHCP.DropPercent), 0, 100)},
		{"boot.faults.dhcp.delay", nonNegative(int64(c.Boot.Faults.DHCP.Delay))},
		{"boot.faults.tftp.drop_percent", between(int64(c.Boot.Faults.TFTP.DropPercent), 0, 100)},
		{"boot.faults.tftp.delay", nonNegative(int64(c.Boot.Faults.TFTP.Delay))},
		{"boot.faults.http.drop_percent", between(int64(c.Boot.Faults.HTTP.DropPercent), 0, 100)},
		{"boot.faults.http.delay", nonNegative(int64(c.Boot.Faults.HTTP.Delay))},
		{"security.auth_fail_burst", between(int64(c.Security.AuthFailBurst), 1, 100000)},
		{"security.auth_fail_interval", positive(int64(c.Security.AuthFailInterval))},
		{"security.login_fail_burst", between(int64(c.Security.LoginFailBurst), 1, 100000)},
		{"security.login_fail_interval", positive(int64(c.Security.LoginFailInterval))},
		{"security.audit_max_rows", between(int64(c.Security.AuditMaxRows), 1000, 1000000000)},
	}
	out = append(out, c.networkChecks()...)
	if len(c.Boot.Interfaces) > 0 && c.Boot.DHCP.Mode == "server" {
		out = append(out,
			check{"boot.dhcp.range_start", ipv4(c.Boot.DHCP.RangeStart, true)},
			check{"boot.dhcp.range_end", ipv4(c.Boot.DHCP.RangeEnd, true)},
			check{"boot.dhcp.range_end", ordered(c.Boot.DHCP.RangeStart, c.Boot.DHCP.RangeEnd)},
			check{"boot.dhcp.netmask", netmask(c.Boot.DHCP.Netmask)},
		)
	}
	if len(c.Boot.Interfaces) > 0 {
		out = append(out, check{"boot.base_url", required(c.Boot.BaseURL)},
			check{"boot.http_listen", required(c.Boot.HTTPListen)})
	}
	if c.Gateway.ID == "" {
		out = append(out, check{"gateway.addresses", unusedWith(strings.Join(c.Gateway.Addresses, " "), "an empty gateway.id (not a gateway)")})
	}
	if c.State.Engine == "postgres" {
		out = append(out,
			check{"state.dsn", oneOfTwo(c.State.DSN, c.State.DSNFile, "state.dsn", "state.dsn_file")},
			check{"state.dsn", noPassword(c.State.DSN)},
			check{"security.key_file", requiredWhy(c.Security.KeyFile, "with state.engine postgres (every gateway needs the same key)")},
		)
		if c.Gateway.ID != "" {
			out = append(out,
				check{"gateway.id", match(c.Gateway.ID, gatewayRe, "1 to 63 letters, digits, '.', '-' or '_'")},
				check{"gateway.group", match(c.Gateway.Group, gatewayRe, "1 to 63 letters, digits, '.', '-' or '_'")},
				check{"gateway.lease", durationBetween(c.Gateway.Lease, 3*time.Second, 10*time.Minute)},
				check{"iscsi.portal", requiredWhy(c.ISCSI.Portal, "with gateway.id: the group's floating portal address, the same on each of its gateways")},
				check{"gateway.addresses", gatewayAddresses(c.Gateway.Addresses, c.ISCSI.Portal)},
			)
		}
	} else {
		out = append(out, check{"gateway.id", unusedWith(c.Gateway.ID, "state.engine sqlite (one bmid owns the file)")})
		out = append(out, check{"state.path", required(c.State.Path)},
			check{"state.dsn", unusedWith(c.State.DSN, "state.engine sqlite")},
			check{"state.dsn_file", unusedWith(c.State.DSNFile, "state.engine sqlite")})
	}
	if c.Boot.Files.Enabled {
		out = append(out,
			check{"boot.files.pxelinux_dir", required(c.Boot.Files.PXELinuxDir)},
			check{"boot.files.ipxe_dir", required(c.Boot.Files.IPXEDir)},
		)
	}
	return out
}

// distinct refuses a listen address equal to the other key's.
func distinct(s, other, otherKey string) string {
	if s != "" && s == other {
		return "must differ from " + otherKey + ": the provisioning network must not reach the API"
	}
	return ""
}

// management refuses a wildcard API address on a host that serves the
// provisioning network: the API (and /metrics) would answer there too.
func management(s string, boots bool) string {
	host, _, err := net.SplitHostPort(s)
	if err != nil || !boots {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return fmt.Sprintf("%q is a wildcard address, which also answers on the provisioning network: give the management address", s)
	}
	return ""
}

func required(s string) string {
	if strings.TrimSpace(s) == "" {
		return "required"
	}
	return ""
}

func match(s string, re *regexp.Regexp, want string) string {
	if s == "" {
		return "required"
	}
	if !re.MatchString(s) {
		return fmt.Sprintf("invalid value %q: want %s", s, want)
	}
	return ""
}

func oneOf(s string, allowed ...string) string {
	for _, a := range allowed {
		if s == a {
			return ""
		}
	}
	return fmt.Sprintf("invalid value %q: want one of %s", s, strings.Join(allowed, ", "))
}

func pair(s, other, otherKey string) string {
	if s == "" && other != "" {
		return "required when " + otherKey + " is set"
	}
	return ""
}

func positive(n int64) string {
	if n <= 0 {
		return "must be greater than zero"
	}
	return ""
}

func nonNegative(n int64) string {
	if n < 0 {
		return "must not be negative"
	}
	return ""
}

func hostPort(s string, req bool) string {
	if s == "" {
		if req {
			return "required"
		}
		return ""
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("invalid address %q: want host:port", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Sprintf("invalid port in %q", s)
	}
	if host != "" && host != "localhost" {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Sprintf("invalid host in %q: want an IP address", s)
		}
	}
	return ""
}

// gatewayAddresses checks a gateway's own portal addresses: host:port
// with an IP address each, none twice, none the group's portal.
func gatewayAddresses(list []string, portal string) string {
	for i, a := range list {
		if p := hostPort(a, true); p != "" {
			return p
		}
		if a == portal {
			return fmt.Sprintf("%s is iscsi.portal, the group's portal (which moves between gateways): list this gateway's own addresses", a)
		}
		if slices.Contains(list[:i], a) {
			return fmt.Sprintf("%s is listed twice", a)
		}
	}
	return ""
}

func hostPorts(list []string) string {
	if len(list) == 0 {
		return "required: at least one host:port"
	}
	for _, s := range list {
		if p := hostPort(s, true); p != "" {
			return p
		}
	}
	return ""
}

func httpURL(s string, req bool) string {
	if s == "" {
		if req {
			return "required"
		}
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Sprintf("invalid URL %q: want http://host[:port][/path]", s)
	}
	return ""
}

func ipv4(s string, req bool) string {
	if s == "" {
		if req {
			return "required"
		}
		return ""
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return fmt.Sprintf("invalid value %q: want an IPv4 address", s)
	}
	return ""
}

func ipv4List(list []string) string {
	for _, s := range list {
		if p := ipv4(s, true); p != "" {
			return p
		}
	}
	return ""
}

func ordered(start, end string) string {
	a, err1 := netip.ParseAddr(start)
	b, err2 := netip.ParseAddr(end)
	if err1 == nil && err2 == nil && b.Less(a) {
		return fmt.Sprintf("%s comes before range_start %s", end, start)
	}
	return ""
}

// netmask accepts a dotted quad ("255.255.255.0") or a prefix length ("24").
func netmask(s string) string {
	if _, err := ParseNetmask(s); err != nil {
		return err.Error()
	}
	return ""
}

// ParseNetmask returns the prefix length of a netmask given as a dotted quad
// or as a prefix length.
func ParseNetmask(s string) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("required")
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 32 {
			return 0, fmt.Errorf("invalid prefix length %d: want 1 to 32", n)
		}
		return n, nil
	}
	ip := net.ParseIP(s).To4()
	if ip == nil {
		return 0, fmt.Errorf("invalid netmask %q: want 255.255.255.0 or 24", s)
	}
	ones, bits := net.IPMask(ip).Size()
	if bits == 0 || ones == 0 {
		return 0, fmt.Errorf("invalid netmask %q: not a contiguous mask", s)
	}
	return ones, nil
}

func interfaces(list []string) string {
	for _, s := range list {
		if !ifaceRe.MatchString(s) {
			return fmt.Sprintf("invalid interface name %q", s)
		}
	}
	return ""
}

func optionalMatch(s string, re *regexp.Regexp, want string) string {
	if s == "" {
		return ""
	}
	return match(s, re, want)
}

func between(n, lo, hi int64) string {
	if n < lo || n > hi {
		return fmt.Sprintf("must be between %d and %d", lo, hi)
	}
	return ""
}

// durationBetween checks lo <= d <= hi.
func durationBetween(d, lo, hi time.Duration) string {
	if d < lo || d > hi {
		return fmt.Sprintf("must be between %v and %v", lo, hi)
	}
	return ""
}

// seconds checks a duration that iPXE takes in whole seconds (0 to 1 h).
func seconds(d time.Duration) string {
	if d < 0 || d > time.Hour || d%time.Second != 0 {
		return "must be whole seconds between 0s and 1h"
	}
	return ""
}

// oneOfTwo wants exactly one of two keys set.
func oneOfTwo(a, b, aKey, bKey string) string {
	switch {
	case a == "" && b == "":
		return "required: set " + aKey + " or " + bKey
	case a != "" && b != "":
		return "set " + aKey + " or " + bKey + ", not both"
	}
	return ""
}

// requiredWhy is required with the reason the key is needed.
func requiredWhy(s, why string) string {
	if s == "" {
		return "required " + why
	}
	return ""
}

// unusedWith refuses a key that means nothing in this configuration.
func unusedWith(s, with string) string {
	if s != "" {
		return "not used with " + with
	}
	return ""
}

// noPassword refuses a PostgreSQL connection string that holds a
// password (a URL's user:password@ or a password= word): the
// configuration file, the environment and flags are not for secrets. The
// value is never repeated in the message.
func noPassword(dsn string) string {
	const why = "holds a password; put the connection string in state.dsn_file (mode 0600), or the password in ~/.pgpass or PGPASSWORD"
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "not a valid postgres:// URL"
		}
		if _, ok := u.User.Password(); ok || u.Query().Has("password") {
			return why
		}
		return ""
	}
	for _, w := range strings.Fields(dsn) {
		if k, _, _ := strings.Cut(w, "="); strings.TrimSpace(k) == "password" {
			return why
		}
	}
	return ""
}
