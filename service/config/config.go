// Package config is the schema of bmid's configuration: one YAML file,
// overridable by BMI_* environment variables and by flags, validated strictly
// at start-up.
//
// Every key is a field below with a `yaml` tag and a doc comment;
// configs/bmid.example.yaml documents each one (a test keeps the two in
// step). Unknown keys, bad values and missing required keys are errors that
// name the key and the file. Flags belong to cmd/; this package only knows
// keys.
package config

import "time"

// Config is the whole of bmid's configuration.
type Config struct {
	// UID prefixes the Ceph names of every image this BMI creates
	// ("<uid>img<id>"), so several BMI installations can share one pool.
	UID string `yaml:"uid"`
	// AdminProject is the HIL project whose members are BMI administrators.
	AdminProject string `yaml:"admin_project"`
	// Log configures logging.
	Log Log `yaml:"log"`
	// API configures the REST API listener.
	API API `yaml:"api"`
	// State configures the state database.
	State State `yaml:"state"`
	// Gateway makes this bmid one gateway among several on one PostgreSQL
	// database.
	Gateway Gateway `yaml:"gateway"`
	// Ceph configures the Ceph client.
	Ceph Ceph `yaml:"ceph"`
	// HIL configures the HIL client.
	HIL HIL `yaml:"hil"`
	// ISCSI configures the embedded iSCSI target.
	ISCSI ISCSI `yaml:"iscsi"`
	// Boot configures the network boot services (DHCP, TFTP, iPXE scripts).
	Boot Boot `yaml:"boot"`
	// Security bounds failed authentication attempts.
	Security Security `yaml:"security"`
	// Metrics labels bmid's metrics.
	Metrics Metrics `yaml:"metrics"`
	// Events bounds the event stream.
	Events Events `yaml:"events"`
}

// Metrics labels the Prometheus metrics of bmid's planes (/metrics).
type Metrics struct {
	// Gateway is the value of the gateway label on every iSCSI, boot,
	// operation and Ceph series; empty means the host name.
	Gateway string `yaml:"gateway"`
}

// Events bounds the event stream (GET /api/v1/events).
type Events struct {
	// MaxClients is how many streams bmid serves at once; one more is
	// refused with 503.
	MaxClients int `yaml:"max_clients"`
}

// Security bounds failed authentication attempts: a token bucket per
// source address and per user (API) or initiator name (iSCSI) that each
// failure drains; an empty bucket is refused (429, or a login reject)
// before its credentials are checked, and refills one failure per
// interval.
type Security struct {
	// KeyFile holds the key (32 bytes, mode 0600) that seals CHAP secrets
	// in the state database; empty means secret.key next to state.path
	// (required with state.engine postgres: every gateway needs the same
	// key).
	// Created at first start; once secrets are sealed with it, a missing,
	// unreadable, wrong-size or group/world-accessible file stops bmid.
	KeyFile string `yaml:"key_file"`
	// AuthFailBurst is how many failed API authentications a source or a
	// user may have at once.
	AuthFailBurst int `yaml:"auth_fail_burst"`
	// AuthFailInterval is how often one more failure is allowed.
	AuthFailInterval time.Duration `yaml:"auth_fail_interval"`
	// LoginFailBurst is how many failed iSCSI logins a source or an
	// initiator name may have at once.
	LoginFailBurst int `yaml:"login_fail_burst"`
	// LoginFailInterval is how often one more failed login is allowed.
	LoginFailInterval time.Duration `yaml:"login_fail_interval"`
	// AuditMaxRows bounds the audit log: older entries are deleted beyond
	// it (a flood of refused logins cannot fill the disk).
	AuditMaxRows int `yaml:"audit_max_rows"`
}

// Log configures logging.
type Log struct {
	// Format is "auto" (text on a terminal, JSON otherwise), "text" or "json".
	Format string `yaml:"format"`
	// Level is "debug", "info", "warn" or "error".
	Level string `yaml:"level"`
}

// API configures the REST API listener.
type API struct {
	// Listen is the address the API serves on (host:port).
	Listen string `yaml:"listen"`
	// TLSCert and TLSKey are PEM files; when both are set the API serves TLS.
	TLSCert string `yaml:"tls_cert"`
	// TLSKey is the private key matching TLSCert.
	TLSKey string `yaml:"tls_key"`
	// AuthCacheTTL is how long HIL-validated credentials are trusted
	// before HIL is asked again.
	AuthCacheTTL time.Duration `yaml:"auth_cache_ttl"`
	// MaxBodyBytes bounds JSON request bodies (uploads stream and are not
	// bound by it).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// State configures the state database.
type State struct {
	// Engine is "sqlite" (the embedded default: one bmid, a file) or
	// "postgres" (a PostgreSQL database, the state several gateways can
	// share).
	Engine string `yaml:"engine"`
	// Path is the SQLite database file; created with its schema on first
	// start (engine sqlite).
	Path string `yaml:"path"`
	// DSN is the PostgreSQL connection string (engine postgres), a libpq
	// "key=value ..." string or a postgres:// URL, without a password:
	// that goes in DSNFile, ~/.pgpass (PGPASSFILE) or PGPASSWORD.
	DSN string `yaml:"dsn"`
	// DSNFile is a file holding the PostgreSQL connection string, which
	// may include the password; it must be readable by its owner only
	// (mode 0600). Instead of DSN.
	DSNFile string `yaml:"dsn_file"`
}

// Gateway makes this bmid one of several gateways that share a PostgreSQL
// state database (state.engine postgres): each holds a lease in the
// database, exports the disks placed on it, and takes over the disks and
// unfinished operations of a gateway of its group whose lease expired.
// Without an id, a bmid on PostgreSQL is the database's only one.
type Gateway struct {
	// ID names this gateway, unique among the database's gateways; empty:
	// not a gateway (the only bmid on its database).
	ID string `yaml:"id"`
	// Group is the gateway's group: the gateways that reach one
	// provisioning network (a rack) and share its floating portal address
	// (iscsi.portal, the same on each). Disks are placed, balanced by
	// count, on the group's live gateways.
	Group string `yaml:"group"`
	// Lease is how long the gateway's lease lasts unrenewed (renewed every
	// third of it): a gateway silent for longer is taken over.
	Lease time.Duration `yaml:"lease"`
	// Addresses are the gateway's own portal addresses (host:port, IP
	// addresses), one on each network its nodes log in from, recorded in
	// its gateways row: a login at the group's portal for a disk placed on
	// this gateway is redirected to its address on the network the login
	// came in on (iSCSI "target moved temporarily"). They should move to
	// a surviving gateway as the group's portal does (keepalived), since
	// an initiator reconnects to where it was redirected (iPXE's iBFT
	// records it). Empty: logins for this gateway's disks at another
	// gateway are answered "service unavailable", and succeed only at this
	// gateway itself.
	Addresses []string `yaml:"addresses"`
}

// Ceph configures the Ceph client.
type Ceph struct {
	// Conf is the ceph.conf of the cluster.
	Conf string `yaml:"conf"`
	// ID is the cephx client id (without "client.").
	ID string `yaml:"id"`
	// Keyring is the client's keyring; empty means what ceph.conf says.
	Keyring string `yaml:"keyring"`
	// Pool is the RBD pool images, snapshots and clones live in.
	Pool string `yaml:"pool"`
	// Snapshot is the name of the protected snapshot BMI takes of an image
	// before cloning it.
	Snapshot string `yaml:"snapshot"`
	// OpTimeout bounds every monitor and OSD call (rados_osd_op_timeout,
	// rados_mon_op_timeout, client_mount_timeout); 0 is refused, because
	// Ceph's default of "forever" turns an outage into a silent hang.
	OpTimeout time.Duration `yaml:"op_timeout"`
	// BusyWait bounds how long removing an image waits while Ceph says it
	// is in use: after a crash the dead bmid's watch on a disk it exported
	// lingers until the OSD times it out (osd_client_watch_timeout, 30 s by
	// default).
	BusyWait time.Duration `yaml:"busy_wait"`
}

// HIL configures the client of HIL, the service that owns nodes, NICs,
// networks and power.
type HIL struct {
	// URL is HIL's base URL, without the /v0 suffix.
	URL string `yaml:"url"`
	// Timeout bounds one HIL call.
	Timeout time.Duration `yaml:"timeout"`
	// NetworkTimeout bounds the wait for an asynchronous network change
	// (connect or detach of a NIC) to finish.
	NetworkTimeout time.Duration `yaml:"network_timeout"`
	// Channel is the HIL channel nodes are connected on ("vlan/native", or
	// "null" for HIL's null network allocator).
	Channel string `yaml:"channel"`
	// ProvisioningNetwork is the HIL network `provision` and `boot set`
	// attach the node's NIC to (and `deprovision` and `boot clear` detach
	// it from); empty leaves the node's networks to the operator.
	ProvisioningNetwork string `yaml:"provisioning_network"`
	// User is BMI's own HIL account, used for the network changes of
	// provision and deprovision (also when a crash is recovered, when the
	// operator's credentials are gone). Required with provisioning_network.
	User string `yaml:"user"`
	// PasswordFile holds User's password (first line); never the password
	// itself in this file.
	PasswordFile string `yaml:"password_file"`
}

// ISCSI configures the embedded iSCSI target.
type ISCSI struct {
	// Listen is the list of host:port addresses the target listens on.
	Listen []string `yaml:"listen"`
	// Portal is the host:port nodes are told to log in to (the address of
	// this host on the provisioning network).
	Portal string `yaml:"portal"`
	// IQNPrefix prefixes every target name; a disk's IQN is
	// "<iqn_prefix>:<uid>.<disk id>".
	IQNPrefix string `yaml:"iqn_prefix"`
	// CHAP requires per-target CHAP at login; turning it off is for tests
	// only and is logged as a warning.
	CHAP bool `yaml:"chap"`
	// DrainTimeout bounds a graceful stop of the target (bmid stopping or
	// restarting): commands already running may finish for this long
	// before the connections close.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// Time2Wait is what a graceful stop tells initiators to wait before
	// they log in again (whole seconds): about how long a restart of bmid
	// takes, so that their first attempt finds the new one serving.
	Time2Wait time.Duration `yaml:"time2wait"`
}

// Boot configures the network boot services.
type Boot struct {
	// Interfaces are the network interfaces DHCP answers on; empty means no
	// DHCP at all (a site whose own DHCP server chains to our iPXE scripts).
	Interfaces []string `yaml:"interfaces"`
	// BaseURL is the URL nodes fetch their iPXE scripts from: HTTPListen
	// as seen from the provisioning network.
	BaseURL string `yaml:"base_url"`
	// HTTPListen is the host:port of the provisioning network's own HTTP
	// listener, which serves iPXE scripts and binaries and nothing else
	// (the API and /metrics never answer there); empty: no boot HTTP.
	// With Networks, only its port counts: each network's listener is on
	// that network's address.
	HTTPListen string `yaml:"http_listen"`
	// RequirePowerOn answers DHCP and serves scripts for a node's MAC only
	// while HIL reports the node powered on, so a host that takes a
	// powered-off node's MAC gets neither its lease nor its script. It
	// needs hil.user (BMI's HIL account asks the power status).
	RequirePowerOn bool `yaml:"require_power_on"`
	// Networks, when set, gives each project a provisioning network of
	// its own: BMI creates a HIL network per project (owned by hil.user,
	// a HIL administrator) on one of these VLANs and serves each on its
	// own interface, address and pool; a node boots only on its
	// project's network. It replaces interfaces, base_url,
	// dhcp.range_start/range_end/netmask/server_ip and
	// hil.provisioning_network, which must then be empty.
	Networks []ProvNet `yaml:"networks"`
	// DHCP configures the DHCP server.
	DHCP DHCP `yaml:"dhcp"`
	// TFTP configures the TFTP server for iPXE binaries.
	TFTP TFTP `yaml:"tftp"`
	// Files configures legacy file mode for sites that keep their own dnsmasq.
	Files Files `yaml:"files"`
	// IPXE tunes the generated iPXE scripts.
	IPXE IPXE `yaml:"ipxe"`
	// Faults injects drops and delays into the boot services (tests and
	// the lab only; off by default, logged loudly when on).
	Faults BootFaults `yaml:"faults"`
}

// ProvNet is one provisioning network of boot.networks.
type ProvNet struct {
	// Name is the HIL network BMI creates for the project this network
	// is given to.
	Name string `yaml:"name"`
	// VLAN is the network's VLAN id (HIL's net_id).
	VLAN int `yaml:"vlan"`
	// Interface is this host's interface on that VLAN, where DHCP answers.
	Interface string `yaml:"interface"`
	// Address is this host's address on the network with its prefix
	// length (10.20.101.1/24): DHCP server identifier and TFTP next-server,
	// the boot HTTP listener (port of boot.http_listen) and the iSCSI
	// portal nodes of the network log in to (port of iscsi.portal).
	Address string `yaml:"address"`
	// RangeStart and RangeEnd bound the network's address pool.
	RangeStart string `yaml:"range_start"`
	// RangeEnd is the last address of the pool.
	RangeEnd string `yaml:"range_end"`
}

// IPXE tunes the iPXE scripts served at /boot/<mac>.ipxe.
type IPXE struct {
	// TemplateDir overrides the embedded templates with files of the same
	// name (sanboot.ipxe.tmpl, noconfig.ipxe.tmpl); empty uses the embedded.
	TemplateDir string `yaml:"template_dir"`
	// Attempts is how many times a script tries sanboot before it gives up.
	Attempts int `yaml:"attempts"`
	// RetryDelay is the wait after the first failed attempt; it doubles
	// after each further one (whole seconds).
	RetryDelay time.Duration `yaml:"retry_delay"`
	// RebootDelay is the pause before the reboot after the last attempt.
	RebootDelay time.Duration `yaml:"reboot_delay"`
	// NoConfigPause is how long a node without a boot config shows why
	// before its firmware moves to the next boot device.
	NoConfigPause time.Duration `yaml:"no_config_pause"`
	// RequireLease serves a node's script (with its CHAP secret) only to
	// the address BMI's DHCP leased to the node (server mode only).
	RequireLease bool `yaml:"require_lease"`
	// ScriptToken puts a random one-time token into the script URL of
	// each DHCP answer to iPXE; a script is served only with an unused,
	// unexpired token issued for its MAC. It needs bmid's DHCP (server or
	// proxy mode) and is proxy mode's counterpart of RequireLease.
	ScriptToken bool `yaml:"script_token"`
}

// BootFaults injects faults per boot service.
type BootFaults struct {
	// DHCP drops or delays DHCP answers.
	DHCP Fault `yaml:"dhcp"`
	// TFTP drops incoming TFTP packets or delays transfers.
	TFTP Fault `yaml:"tftp"`
	// HTTP drops or delays iPXE script requests.
	HTTP Fault `yaml:"http"`
}

// Fault is the fault injection of one service.
type Fault struct {
	// DropPercent is the share of packets or requests dropped (0-100).
	DropPercent int `yaml:"drop_percent"`
	// Delay is added before each answer.
	Delay time.Duration `yaml:"delay"`
}

// DHCP configures the DHCP server.
type DHCP struct {
	// Mode is "server" (hand out addresses from Range) or "proxy" (another
	// DHCP server hands out addresses; BMI only sends boot options).
	Mode string `yaml:"mode"`
	// RangeStart and RangeEnd bound the address pool (server mode).
	RangeStart string `yaml:"range_start"`
	// RangeEnd is the last address of the pool.
	RangeEnd string `yaml:"range_end"`
	// Netmask is the subnet mask handed to nodes (dotted quad or prefix length).
	Netmask string `yaml:"netmask"`
	// Router is the default gateway handed to nodes; empty for none.
	Router string `yaml:"router"`
	// DNS are the name servers handed to nodes.
	DNS []string `yaml:"dns"`
	// LeaseTime is the lease duration.
	LeaseTime time.Duration `yaml:"lease_time"`
	// IPv6RA answers IPv6 router solicitations on the interfaces with an
	// advertisement that configures nothing; it spares each iPXE boot a
	// 13 s wait for IPv6 router discovery.
	IPv6RA bool `yaml:"ipv6_ra"`
	// ServerIP is this host's address on the boot network (DHCP server
	// identifier and TFTP next-server); empty takes each interface's first
	// IPv4 address.
	ServerIP string `yaml:"server_ip"`
}

// TFTP configures the TFTP server.
type TFTP struct {
	// Listen is the UDP host:port; empty disables TFTP. With
	// boot.networks, only its port counts: each network has a TFTP
	// server on its own address.
	Listen string `yaml:"listen"`
	// Root is the directory of iPXE binaries (Debian's package ipxe puts
	// them in /usr/lib/ipxe). Requests never leave it.
	Root string `yaml:"root"`
	// Preload names files under Root read into memory at start, following
	// symlinks wherever they lead (Debian's ipxe.efi links to /boot).
	Preload []string `yaml:"preload"`
}

// Files configures legacy file mode: pxelinux and iPXE files written for a
// site's own dnsmasq, as the original BMI did.
type Files struct {
	// Enabled turns file mode on.
	Enabled bool `yaml:"enabled"`
	// PXELinuxDir receives pxelinux.cfg/01-<mac> files.
	PXELinuxDir string `yaml:"pxelinux_dir"`
	// IPXEDir receives <node>.ipxe files.
	IPXEDir string `yaml:"ipxe_dir"`
	// IPXEInterface is the interface the <node>.ipxe files configure
	// ("net2" in the original); empty lets iPXE take the first that answers.
	IPXEInterface string `yaml:"ipxe_interface"`
}

// Default returns the configuration every key starts from before the file,
// the environment and flags are applied.
func Default() Config {
	return Config{
		AdminProject: "bmi_infra",
		Log:          Log{Format: "auto", Level: "info"},
		API: API{
			Listen:       "127.0.0.1:8080",
			AuthCacheTTL: 30 * time.Second,
			MaxBodyBytes: 1 << 20,
		},
		State:   State{Engine: "sqlite", Path: "/var/lib/bmi/bmi.db"},
		Gateway: Gateway{Group: "default", Lease: 15 * time.Second},
		Ceph: Ceph{
			Conf:      "/etc/ceph/ceph.conf",
			ID:        "admin",
			Pool:      "rbd",
			Snapshot:  "bmi-snap",
			OpTimeout: 30 * time.Second,
			BusyWait:  45 * time.Second,
		},
		HIL: HIL{
			Timeout:        10 * time.Second,
			NetworkTimeout: 2 * time.Minute,
			Channel:        "vlan/native",
		},
		ISCSI: ISCSI{
			Listen:       []string{"0.0.0.0:3260"},
			IQNPrefix:    "iqn.2026-11.org.bmi",
			CHAP:         true,
			DrainTimeout: 5 * time.Second,
			Time2Wait:    time.Second,
		},
		Boot: Boot{
			DHCP: DHCP{Mode: "server", LeaseTime: time.Hour, IPv6RA: true},
			TFTP: TFTP{Root: "/usr/lib/ipxe", Preload: []string{"ipxe.efi"}},
			IPXE: IPXE{Attempts: 4, RetryDelay: 2 * time.Second, RebootDelay: 10 * time.Second, NoConfigPause: 5 * time.Second,
				RequireLease: true, ScriptToken: true},
			RequirePowerOn: true,
		},
		Security: Security{AuthFailBurst: 10, AuthFailInterval: 6 * time.Second,
			LoginFailBurst: 10, LoginFailInterval: 6 * time.Second, AuditMaxRows: 1000000},
		Events: Events{MaxClients: 64},
	}
}
