// Package apiserver is bmid's HTTP front: the JSON API under /api/v1, the
// original BMI's form-encoded legacy endpoints, /healthz, /readyz,
// /metrics and the OpenAPI document. It is the only package that imports
// gin. Every call is passed to the operations core with the caller's HTTP
// basic credentials as a core.Principal; the core authorises it.
package apiserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
)

// Ops are the operations of the core the server exposes (*core.Service).
type Ops interface {
	CreateProject(ctx context.Context, who core.Principal, name string) (core.Project, error)
	ListProjects(ctx context.Context, who core.Principal) ([]core.Project, error)
	RemoveProject(ctx context.Context, who core.Principal, name string, force bool) error
	DBList(ctx context.Context, who core.Principal, f core.ImageFilter) ([]core.Image, error)

	ListImages(ctx context.Context, who core.Principal, project string) ([]core.Image, error)
	ListSnapshots(ctx context.Context, who core.Principal, project string) ([]core.Image, error)
	ShowImage(ctx context.Context, who core.Principal, project, name string) (core.Image, error)
	ImportImage(ctx context.Context, who core.Principal, project, source string, opt core.ImportOptions) (core.Image, error)
	ExportImage(ctx context.Context, who core.Principal, project, name, dest string) error
	CopyImage(ctx context.Context, who core.Principal, srcProject, name, dstProject, newName string) (core.Image, error)
	MoveImage(ctx context.Context, who core.Principal, srcProject, name, dstProject, newName string) (core.Image, error)
	RemoveImage(ctx context.Context, who core.Principal, project, name string) error
	CreateSnapshot(ctx context.Context, who core.Principal, project, disk, snapName string) (core.Image, error)
	UploadImage(ctx context.Context, who core.Principal, project, name string, body io.Reader, size uint64) (core.Image, error)
	DownloadImage(ctx context.Context, who core.Principal, project, name string, w io.Writer, progress core.Progress) (core.Image, error)

	CreateDisk(ctx context.Context, who core.Principal, project, image, disk string) (core.DiskInfo, error)
	DeleteDisk(ctx context.Context, who core.Principal, project, disk string) error
	ListDisks(ctx context.Context, who core.Principal, project string) ([]core.DiskInfo, error)
	ListTargets(ctx context.Context, who core.Principal, project string) ([]core.TargetInfo, error)
	ExportDisk(ctx context.Context, who core.Principal, project, disk string) (core.Target, error)
	UnexportDisk(ctx context.Context, who core.Principal, project, disk string) error

	SetBoot(ctx context.Context, who core.Principal, project, node, nic, disk string) (core.BootConfig, error)
	ClearBoot(ctx context.Context, who core.Principal, project, node string) error
	ShowBoot(ctx context.Context, who core.Principal, project, node string) (core.BootConfig, error)
	ListBoots(ctx context.Context, who core.Principal, project string) ([]core.BootConfig, error)
	Provision(ctx context.Context, who core.Principal, project, node, image, nic string) (core.DiskInfo, error)
	Deprovision(ctx context.Context, who core.Principal, project, node, nic string) error
	CheckNetwork(ctx context.Context, who core.Principal, project, network string) error
	NodeIP(ctx context.Context, who core.Principal, project, node, nic string) (string, error)

	Op(ctx context.Context, who core.Principal, id string) (core.Operation, error)
	Ops(ctx context.Context, who core.Principal, st core.OpState, limit int) ([]core.Operation, error)
	Reconcile(ctx context.Context, who core.Principal, fix bool) (core.Report, error)
}

// Authenticator checks credentials before a request reaches the core
// (the daemon passes its HIL adapter). It fails with
// fault.ErrUnauthenticated for refused credentials.
type Authenticator interface {
	Authenticate(ctx context.Context, who core.Principal) error
}

// Config is what New needs.
type Config struct {
	// Ops runs the operations (required).
	Ops Ops
	// Auth, when set, checks credentials up front; accepted credentials
	// are remembered for AuthCacheTTL. When nil every call goes to the
	// core with its credentials, and the core authenticates.
	Auth Authenticator
	// AuthCacheTTL is how long accepted credentials are remembered.
	AuthCacheTTL time.Duration
	// Log receives one line per request and the details of internal errors
	// (required).
	Log *slog.Logger
	// Registry receives the server's metrics and is what /metrics serves;
	// nil means a registry of the server's own (with Go and process
	// collectors).
	Registry *prometheus.Registry
	// Ready reports whether the daemon can serve (/readyz); nil means ready.
	Ready func(ctx context.Context) error
	// Listen is the address Serve listens on (host:port).
	Listen string
	// TLSCert and TLSKey are PEM files; when both are set Serve uses TLS.
	TLSCert, TLSKey string
	// MaxBodyBytes bounds JSON and form bodies (uploads are streamed and
	// not bound by it); 0 means 1 MiB.
	MaxBodyBytes int64
	// BodyTimeout bounds how long a client may take to send a JSON or
	// form body (uploads are not bound by it); 0 means 30 s.
	BodyTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown; 0 means 30 s.
	ShutdownTimeout time.Duration
	// AuthFailures, when set, counts failed authentications per source
	// address ("ip:<addr>") and user name ("user:<name>"); a throttled
	// one gets 429 before its credentials are checked.
	AuthFailures Limiter
	// Security, when set, serves initiator ACLs and the audit log, and
	// receives an audit entry per state-changing call.
	Security Security
	// Portal is the iSCSI portal nodes log in to ("host:port",
	// iscsi.portal; port 3260 when left out): disks' answers and their
	// sanboot URI carry it. Empty leaves portal and port out.
	Portal string
	// Timeline, when set, serves nodes' boot timelines; without it a
	// node's timeline is empty.
	Timeline Timeline
	// Events, when set, serves the event stream (GET /api/v1/events).
	Events Events
	// UI, when set, serves the status page (/ui/).
	UI UI
}

// Server is bmid's HTTP server.
type Server struct {
	cfg     Config
	engine  *gin.Engine
	log     *slog.Logger
	metrics *metrics
	auth    *authCache
	spec    []byte
	portal  portal
	bg      sync.WaitGroup
	mu      sync.Mutex // guards mounts and stopping
	mounts  []string
	// stopping is set once Serve has shut the listener down; background
	// operations are no longer started (bg.Add must not race bg.Wait).
	stopping bool
	// shutdown is closed when a graceful shutdown starts: long-lived
	// streams end so that it need not wait for them.
	shutdown     chan struct{}
	shutdownOnce sync.Once
	ui           uiSessions
}

// New builds the server and its routes. It fails only on a missing
// collaborator or a broken embedded OpenAPI document.
func New(cfg Config) (*Server, error) {
	if cfg.Ops == nil || cfg.Log == nil {
		return nil, fault.Errorf(fault.Invalid, "apiserver: ops and log are required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = 30 * time.Second
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	spec, err := specJSON()
	if err != nil {
		return nil, err
	}
	portal, err := parsePortal(cfg.Portal)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.ContextWithFallback = true
	// The client's address is the connection's: X-Forwarded-For would let
	// a password guesser pick a fresh address per try.
	if err := e.SetTrustedProxies(nil); err != nil {
		return nil, fault.Errorf(fault.Internal, "apiserver: %v", err)
	}
	s := &Server{cfg: cfg, engine: e, log: cfg.Log, metrics: m, spec: spec, portal: portal,
		auth: newAuthCache(cfg.Auth, cfg.AuthCacheTTL), shutdown: make(chan struct{})}
	s.routes()
	return s, nil
}

// Handler returns the server's HTTP handler (for tests, and for daemons
// that serve it themselves).
func (s *Server) Handler() http.Handler { return s.engine }

// Mount serves h for every method on every path under prefix (e.g. the
// iPXE script handler at "/boot"). Call it before Serve; a prefix that
// clashes with the API's routes is refused.
func (s *Server) Mount(prefix string, h http.Handler) (err error) {
	prefix = "/" + strings.Trim(prefix, "/")
	if prefix == "/" || strings.HasPrefix(prefix, "/api") {
		return fault.Errorf(fault.Invalid, "apiserver: cannot mount at %q", prefix)
	}
	defer func() {
		if r := recover(); r != nil { // gin panics on conflicting routes
			err = fault.Errorf(fault.Conflict, "apiserver: cannot mount at %q: %v", prefix, r)
		}
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.engine.Any(prefix+"/*path", gin.WrapH(h))
	s.mounts = append(s.mounts, prefix)
	return nil
}

// Serve listens on cfg.Listen and serves until ctx is done, then shuts
// down gracefully (in-flight requests and background operations get
// ShutdownTimeout) and returns nil.
func (s *Server) Serve(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("api listen on %s: %w", s.cfg.Listen, err)
	}
	return s.ServeListener(ctx, ln)
}

// ServeListener is Serve on a listener the caller opened.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.engine,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	// No ReadTimeout/WriteTimeout: uploads and downloads of images stream
	// for minutes; slow clients are bounded by ReadHeaderTimeout and the
	// idle timeout.
	tlsOn := s.cfg.TLSCert != "" && s.cfg.TLSKey != ""
	if tlsOn {
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	srv.RegisterOnShutdown(func() { s.shutdownOnce.Do(func() { close(s.shutdown) }) })
	errc := make(chan error, 1)
	go func() {
		if tlsOn {
			errc <- srv.ServeTLS(ln, s.cfg.TLSCert, s.cfg.TLSKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	s.log.Info("api serving", "addr", ln.Addr().String(), "tls", tlsOn)
	select {
	case err := <-errc:
		return fmt.Errorf("api server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-sctx.Done():
		s.log.Warn("api shutdown: background operations still running; the journal finishes them at next start")
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("api shutdown: %w", err)
	}
	s.log.Info("api stopped")
	return nil
}
