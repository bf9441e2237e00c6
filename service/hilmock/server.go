package hilmock

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/bmi-go/bmi/service/logging"
)

// Options configure a Server. The zero value serves on an ephemeral
// loopback port with a Recorder for both drivers.
type Options struct {
	// Listen is the address to serve on; empty means 127.0.0.1:0.
	Listen string
	// Power controls nodes' power; nil means a new Recorder.
	Power PowerDriver
	// Switch applies network memberships; nil means the Power driver if it
	// is also a SwitchDriver, else a new Recorder.
	Switch SwitchDriver
	// Consoles serves nodes' serial consoles (GET /v0/node/<n>/console);
	// nil answers that the node's OBM is not enabled.
	Consoles ConsoleDriver
	// Logger receives request and action logs; nil discards them.
	Logger *slog.Logger
	// ShutdownTimeout bounds how long Serve waits, once its context is
	// done, for requests and pending network actions to finish; actions
	// still running then stay PENDING in the database and are resumed by
	// the next Serve. Zero means 30 seconds.
	ShutdownTimeout time.Duration
}

// Server is a HIL emulator: its HTTP API, its database and its drivers.
type Server struct {
	db       *sql.DB
	fresh    bool
	ln       net.Listener
	power    PowerDriver
	sw       SwitchDriver
	consoles ConsoleDriver
	// streams ends console streams when Serve stops (they would hold
	// the graceful shutdown until its timeout).
	streams     context.Context
	stopStreams context.CancelFunc
	log         *slog.Logger
	shutdown    time.Duration
	mux         *http.ServeMux

	credMu sync.Mutex
	creds  map[[32]byte]bool // verified (user, password, hash) digests

	actMu     sync.Mutex
	actWG     sync.WaitGroup
	actCtx    context.Context
	actCancel context.CancelFunc
	stopping  bool
}

// New opens (creating and migrating if needed) the database at dbPath and
// binds opts.Listen, so that an address in use fails here and Addr is known
// before Serve. Call Close when done.
func New(ctx context.Context, dbPath string, opts Options) (*Server, error) {
	db, fresh, err := openDB(ctx, dbPath)
	if err != nil {
		return nil, err
	}
	listen := opts.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("hil-mock listen on %s: %w", listen, err)
	}
	s := &Server{db: db, fresh: fresh, ln: ln, power: opts.Power, sw: opts.Switch, consoles: opts.Consoles, log: opts.Logger,
		shutdown: opts.ShutdownTimeout, creds: map[[32]byte]bool{}}
	if s.power == nil {
		s.power = &Recorder{}
	}
	if s.sw == nil {
		if sw, ok := s.power.(SwitchDriver); ok {
			s.sw = sw
		} else {
			s.sw = &Recorder{}
		}
	}
	if s.log == nil {
		s.log = logging.Discard()
	}
	if s.shutdown == 0 {
		s.shutdown = 30 * time.Second
	}
	s.actCtx, s.actCancel = context.WithCancel(context.Background())
	s.streams, s.stopStreams = context.WithCancel(context.Background())
	s.mux = http.NewServeMux()
	s.routes()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL is the base URL of the server (without /v0).
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Fresh reports whether the database was created by New (and so wants an
// inventory).
func (s *Server) Fresh() bool { return s.fresh }

// Handler returns the HTTP handler of the /v0 API.
func (s *Server) Handler() http.Handler { return s.mux }

// Serve resumes the network actions a previous run left PENDING, then
// serves the API until ctx is done. It then stops accepting requests, waits
// up to ShutdownTimeout for requests and network actions to finish, and
// returns nil. Actions still running after that are cancelled and stay
// PENDING. Serve is called at most once.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.resumeActions(ctx); err != nil {
		return err
	}
	hs := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(s.ln) }()
	s.log.Info("hil-mock serving", "addr", s.ln.Addr().String())
	select {
	case err := <-errc:
		s.stopActions(context.Background())
		return fmt.Errorf("hil-mock serve: %w", err)
	case <-ctx.Done():
	}
	s.stopStreams()
	sctx, cancel := context.WithTimeout(context.Background(), s.shutdown)
	defer cancel()
	err := hs.Shutdown(sctx)
	s.stopActions(sctx)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("hil-mock shutdown: %w", err)
	}
	s.log.Info("hil-mock stopped")
	return nil
}

// stopActions refuses new actions and waits for running ones until ctx is
// done, then cancels those left (they stay PENDING).
func (s *Server) stopActions(ctx context.Context) {
	s.actMu.Lock()
	s.stopping = true
	s.actMu.Unlock()
	done := make(chan struct{})
	go func() { s.actWG.Wait(); close(done) }()
	select {
	case <-done:
		s.actCancel()
		return
	default:
	}
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("network actions still running at shutdown; left pending")
		s.actCancel()
		<-done
	}
	s.actCancel()
}

// Close stops any running network action and closes the listener and the
// database.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.stopActions(ctx)
	s.ln.Close()
	return s.db.Close()
}

// kind is the type of one argument of an API call.
type kind int

const (
	argString kind = iota
	argOptString
	argBool
	argOptBool
	argObject
	argOptObject
	argAny // any JSON value, required
)

// schema lists the arguments a call takes from its body (or, for GET, its
// query string), as HIL's rest_call schemas do; anything else is refused.
type schema map[string]kind

// call is one validated, authenticated request.
type call struct {
	r    *http.Request
	who  *principal
	args map[string]any
}

func (c *call) path(name string) string           { return c.r.PathValue(name) }
func (c *call) str(name string) string            { s, _ := c.args[name].(string); return s }
func (c *call) has(name string) bool              { _, ok := c.args[name]; return ok }
func (c *call) boolean(name string) bool          { b, _ := c.args[name].(bool); return b }
func (c *call) object(name string) map[string]any { m, _ := c.args[name].(map[string]any); return m }

// reply is what a handler returns: a status and a body (nil: empty).
type reply struct {
	status int
	body   any
}

var ok200 = reply{status: http.StatusOK}

type handlerFunc func(ctx context.Context, c *call) (reply, error)

var pathParam = regexp.MustCompile(`\{(\w+)\}`)

// handle registers fn for pattern (a Go 1.22 ServeMux pattern with a
// method), validating the request against sch and authenticating it first,
// in that order, as HIL does.
func (s *Server) handle(pattern string, sch schema, fn handlerFunc) {
	var params []string
	for _, m := range pathParam.FindAllStringSubmatch(pattern, -1) {
		params = append(params, m[1])
	}
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		args, err := decodeArgs(r, params, sch)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		who, err := s.authenticate(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		rep, err := fn(r.Context(), &call{r: r, who: who, args: args})
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.log.Debug("api call", "method", r.Method, "path", r.URL.Path, "user", who.name, "status", rep.status)
		writeJSON(w, rep.status, rep.body)
	})
}

const maxBody = 1 << 20

// decodeArgs reads a call's arguments: a JSON object body for methods other
// than GET, query parameters for GET (whose body must be empty).
func decodeArgs(r *http.Request, params []string, sch schema) (map[string]any, error) {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		return nil, errorf(TypeValidation, "the request body could not be read: %v", err)
	}
	args := map[string]any{}
	if r.Method == http.MethodGet {
		if len(body) != 0 {
			return nil, errorf(TypeValidation, "GET request made with a non-empty request body")
		}
		for k, vs := range r.URL.Query() {
			if len(vs) != 1 {
				return nil, errorf(TypeValidation, "Parameter specified more than once")
			}
			if vs[0] == "" {
				return nil, errorf(TypeValidation, "Empty parameter specified")
			}
			args[k] = vs[0]
		}
	} else if len(body) != 0 {
		if err := json.Unmarshal(body, &args); err != nil || args == nil {
			return nil, errorf(TypeValidation, "The request body is not valid JSON")
		}
	}
	invalid := errorf(TypeValidation, "Request arguments are not valid for this request")
	for _, p := range params {
		if _, dup := args[p]; dup {
			return nil, invalid
		}
	}
	for k, v := range args {
		kd, known := sch[k]
		if !known {
			return nil, invalid
		}
		switch kd {
		case argString, argOptString:
			if _, ok := v.(string); !ok {
				return nil, invalid
			}
		case argBool, argOptBool:
			if _, ok := v.(bool); !ok {
				return nil, invalid
			}
		case argObject, argOptObject:
			if _, ok := v.(map[string]any); !ok {
				return nil, invalid
			}
		}
	}
	for k, kd := range sch {
		if _, present := args[k]; !present && (kd == argString || kd == argBool || kd == argObject || kd == argAny) {
			return nil, invalid
		}
	}
	return args, nil
}

// authenticate checks HTTP basic credentials against the user table.
// Unlike HIL's database backend (which answers an unknown user name with
// 404 NotFoundError), hil-mock answers 401 for every failed authentication,
// so user names cannot be probed.
func (s *Server) authenticate(r *http.Request) (*principal, error) {
	fail := unauthorized("Authentication failed. Authentication is required to use this service.")
	user, password, ok := r.BasicAuth()
	if !ok || user == "" {
		return nil, fail
	}
	ctx := r.Context()
	var hash string
	p := &principal{name: user}
	err := s.db.QueryRowContext(ctx, "SELECT password_hash, is_admin FROM users WHERE name = ?", user).Scan(&hash, &p.admin)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fail
	}
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256([]byte(user + "\x00" + password + "\x00" + hash))
	s.credMu.Lock()
	known := s.creds[digest]
	s.credMu.Unlock()
	if !known {
		if !verifyPassword(hash, password) {
			s.log.Info("failed authentication", "user", user)
			return nil, fail
		}
		s.credMu.Lock()
		if len(s.creds) > 10_000 {
			clear(s.creds)
		}
		s.creds[digest] = true
		s.credMu.Unlock()
	}
	p.projects, err = column(ctx, s.db, "SELECT project FROM user_projects WHERE user = ? ORDER BY project", user)
	return p, err
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		s.log.Error("api call failed", "method", r.Method, "path", r.URL.Path, "err", err)
		ae = errorf(TypeServer, "internal error: %v", err)
	} else {
		s.log.Debug("api call refused", "method", r.Method, "path", r.URL.Path, "type", ae.Type, "msg", ae.Msg)
	}
	writeJSON(w, ae.status(), ae)
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	if body == nil {
		w.WriteHeader(status)
		return
	}
	b, err := json.Marshal(body)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"type":"ServerError","msg":"cannot encode the response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}
