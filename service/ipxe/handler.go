package ipxe

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/bmi-go/bmi/service/boot"
	"github.com/bmi-go/bmi/service/fault"
)

// BootSpecs looks up the boot config of the node whose boot NIC has this
// MAC. An error of kind fault.NotFound means the MAC has none.
type BootSpecs interface {
	BootSpec(ctx context.Context, mac net.HardwareAddr) (Spec, error)
}

// Recorder takes the steps of a node's boot timeline.
type Recorder interface {
	Record(ctx context.Context, ev boot.Event)
}

// Clients maps a client's address to its MAC (through the DHCP leases),
// so binaries fetched over HTTP reach the node's boot timeline.
type Clients interface {
	MACByIP(ctx context.Context, ip net.IP) (net.HardwareAddr, error)
}

// Binaries are the iPXE binaries UEFI HTTP-boot clients may fetch over
// HTTP at /boot/<name>.
var Binaries = []string{"ipxe.efi", "snponly.efi", "undionly.kpxe"}

// Handler serves iPXE scripts to the machines of the provisioning network:
//
//	GET /boot/<mac>.ipxe[?token=<t>]  (52:54:00:12:34:56 or 52-54-00-12-34-56)
//	GET /boot/ipxe.efi ...            (when Files is set; see Binaries)
//
// It is meant for the provisioning network's own listener, never the API's.
// A script carries its node's CHAP secret, so it goes only to the machine
// that booted with that MAC: with RequireLease to the holder of the MAC's
// lease, with Tokens to the holder of a token DHCP just issued for it.
// There is no route by node name here: the API has one, for operators,
// that never shows the secret.
type Handler struct {
	// Specs finds boot configs by MAC. Required.
	Specs BootSpecs
	// Renderer renders the scripts. Required.
	Renderer *Renderer
	// Files holds the iPXE binaries for UEFI HTTP boot; nil disables them.
	Files fs.FS
	// Log receives one line per request that fails or is refused.
	Log *slog.Logger
	// Recorder, when set, records StepScript and StepBinary per node.
	Recorder Recorder
	// Clients, when set, names the node that fetched a binary.
	Clients Clients
	// RequireLease serves a node's script (which holds its CHAP secret)
	// only to the address DHCP leased to that node's MAC; it needs
	// Clients. Others get 403. For server mode, where BMI's DHCP hands out
	// every address on the boot network.
	RequireLease bool
	// Tokens, when set, serves a node's script only with a one-time token
	// DHCP issued for its MAC (the token query parameter); others get 403.
	Tokens *Tokens
	// Faults drops or delays requests (tests and the lab only).
	Faults boot.Faults
	// Refused, when set, is told of every script withheld (403, or the
	// no-boot-config script): the client's address, the MAC asked for and
	// why (bmid's audit log).
	Refused func(ctx context.Context, remote string, mac net.HardwareAddr, why string)
}

// refuse answers 403 and reports it.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, log *slog.Logger, mac net.HardwareAddr, why string) {
	log.Warn("refused ipxe script: " + why)
	h.report(r, mac, why)
	http.Error(w, "forbidden", http.StatusForbidden)
}

// report tells Refused of a script withheld.
func (h *Handler) report(r *http.Request, mac net.HardwareAddr, why string) {
	if h.Refused == nil {
		return
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	h.Refused(r.Context(), host, mac, why)
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := h.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("remote", r.RemoteAddr, "path", r.URL.Path)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if h.Faults.Drop() {
		log.Warn("fault injection: dropping http request")
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
				return
			}
		}
		http.Error(w, "dropped by fault injection", http.StatusServiceUnavailable)
		return
	}
	if h.Faults.Wait(r.Context()) {
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/boot/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	if h.Files != nil {
		for _, b := range Binaries {
			if rest == b {
				h.serveBinary(w, r, log, b)
				return
			}
		}
	}
	ms, ok := strings.CutSuffix(rest, ".ipxe")
	mac, err := net.ParseMAC(strings.ReplaceAll(ms, "-", ":"))
	if !ok || err != nil || len(mac) != 6 {
		log.Info("refused ipxe script request: not /boot/<mac>.ipxe")
		http.NotFound(w, r)
		return
	}
	spec, err := h.Specs.BootSpec(r.Context(), mac)
	h.serveScript(w, r, log.With("mac", mac.String()), mac, spec, err)
}

func (h *Handler) serveScript(w http.ResponseWriter, r *http.Request, log *slog.Logger, mac net.HardwareAddr, spec Spec, err error) {
	var body []byte
	switch {
	case errors.Is(err, fault.ErrNotFound):
		log.Info("no boot config; serving the no-boot-config script", "err", err)
		// A machine that boots gets here only through DHCP, which does not
		// answer a MAC without a boot config: report it like a refusal.
		h.report(r, mac, "no boot config served: "+err.Error())
		body, err = h.Renderer.NoConfig(mac, "BMI has no boot config for this machine")
	case err != nil:
		log.Error("boot config lookup failed", "err", err)
		http.Error(w, "boot config lookup failed", http.StatusServiceUnavailable)
		return
	case !h.leaseHolder(r, mac):
		h.refuse(w, r, log, mac, "the client does not hold the DHCP lease of this MAC")
		return
	case h.Tokens != nil && !h.Tokens.Redeem(mac, r.URL.Query().Get("token")):
		h.refuse(w, r, log, mac, "no valid one-time token for this MAC (the URL must come from bmid's DHCP answer of this boot)")
		return
	default:
		body, err = h.Renderer.Script(spec)
		if err != nil {
			log.Error("boot config cannot be rendered; serving the no-boot-config script", "node", spec.Node, "err", err)
			body, err = h.Renderer.NoConfig(mac, "the boot config of this machine is invalid, see the log of bmid")
		}
	}
	if err != nil {
		log.Error("render ipxe script", "err", err)
		http.Error(w, "cannot render script", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	if _, err := w.Write(body); err != nil {
		log.Info("client went away during ipxe script", "err", err)
		return
	}
	if h.Recorder != nil && mac != nil {
		h.Recorder.Record(r.Context(), boot.Event{MAC: mac, Step: boot.StepScript, Detail: r.URL.Path})
	}
}

func (h *Handler) serveBinary(w http.ResponseWriter, r *http.Request, log *slog.Logger, name string) {
	f, err := h.Files.Open(name)
	if err != nil {
		log.Warn("ipxe binary not available", "file", name, "err", err)
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		log.Warn("ipxe binary is not a regular file", "file", name)
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	rs, ok := f.(io.ReadSeeker)
	if !ok {
		http.Error(w, "binary not seekable", http.StatusInternalServerError)
		return
	}
	http.ServeContent(w, r, name, st.ModTime(), rs)
	if h.Recorder == nil || h.Clients == nil || r.Method != http.MethodGet {
		return
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if mac, err := h.Clients.MACByIP(r.Context(), net.ParseIP(host)); err == nil {
			h.Recorder.Record(r.Context(), boot.Event{MAC: mac, Step: boot.StepBinary, Detail: r.URL.Path})
		}
	}
}

// leaseHolder reports whether the request may have mac's script: always,
// unless RequireLease is set and the client is not mac's lease holder.
func (h *Handler) leaseHolder(r *http.Request, mac net.HardwareAddr) bool {
	if !h.RequireLease {
		return true
	}
	if h.Clients == nil || mac == nil {
		return false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	holder, err := h.Clients.MACByIP(r.Context(), net.ParseIP(host))
	return err == nil && holder.String() == mac.String()
}
