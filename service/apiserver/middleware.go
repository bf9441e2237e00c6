package apiserver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
)

const (
	keyRequestID = "bmi.request_id"
	keyPrincipal = "bmi.principal"
)

// requestID returns the request's id (set by the first middleware).
func requestID(c *gin.Context) string { return c.GetString(keyRequestID) }

// principal returns the caller set by the auth middleware.
func principal(c *gin.Context) core.Principal {
	p, _ := c.Get(keyPrincipal)
	who, _ := p.(core.Principal)
	return who
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// validRequestID accepts a caller's request id if it is short and plain.
func validRequestID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// accessLog gives every request an id, counts and times it per route and
// logs one line when it is done.
func (s *Server) accessLog(c *gin.Context) {
	start := time.Now()
	rid := c.GetHeader(api.RequestIDHeader)
	if !validRequestID(rid) {
		rid = newID()
	}
	c.Set(keyRequestID, rid)
	c.Header(api.RequestIDHeader, rid)
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	status := c.Writer.Status()
	d := time.Since(start)
	s.metrics.request(route, c.Request.Method, status, d)
	level := slog.LevelInfo
	if route == "/healthz" || route == "/readyz" || route == "/metrics" {
		level = slog.LevelDebug // probes and scrapes would drown the log
	}
	s.log.Log(c.Request.Context(), level, "request", "request_id", rid, "method", c.Request.Method, "route", route, "path", c.Request.URL.Path,
		"status", status, "bytes", c.Writer.Size(), "duration", d, "remote", c.ClientIP(), "user", principal(c).User)
}

// recoverPanics turns a handler panic into a 500 (logged with its value).
func (s *Server) recoverPanics(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r) // net/http cuts the connection quietly
			}
			s.log.Error("handler panic", "request_id", requestID(c), "panic", r)
			if !c.Writer.Written() {
				c.AbortWithStatusJSON(http.StatusInternalServerError, api.ErrorBody{Error: api.ErrorDetail{
					Kind: string(fault.Internal), Message: "internal error (request " + requestID(c) + ")", RequestID: requestID(c)}})
			}
		}
	}()
	c.Next()
}

// basicAuth parses HTTP basic credentials.
func basicAuth(r *http.Request) (core.Principal, bool) {
	u, p, ok := r.BasicAuth()
	if !ok || u == "" {
		return core.Principal{}, false
	}
	return core.Principal{User: u, Password: logging.Secret(p)}, true
}

// authJSON requires basic credentials on the JSON API.
func (s *Server) authJSON(c *gin.Context) {
	who, ok := basicAuth(c.Request)
	if !ok {
		s.fail(c, fault.Errorf(fault.Unauthenticated, "no credentials: use HTTP basic authentication with your HIL user name and password"))
		return
	}
	if err := s.auth.check(c.Request.Context(), who); err != nil {
		s.fail(c, err)
		return
	}
	c.Set(keyPrincipal, who)
	c.Next()
}

// validateParams refuses malformed names in the path before any handler
// runs.
func (s *Server) validateParams(c *gin.Context) {
	for _, p := range c.Params {
		var err error
		switch p.Key {
		case "project":
			err = core.ValidateName("project name", p.Value)
		case "image":
			err = core.ValidateName("image name", p.Value)
		case "snapshot":
			err = core.ValidateName("snapshot name", p.Value)
		case "disk":
			err = core.ValidateName("disk name", p.Value)
		case "node":
			err = core.ValidateNode("node name", p.Value)
		case "id":
			if !validRequestID(p.Value) {
				err = fault.Errorf(fault.Invalid, "operation id %.20q is malformed", p.Value)
			}
		}
		if err != nil {
			s.fail(c, err)
			return
		}
	}
	c.Next()
}

// limitBody bounds request bodies (not uploads) in size; readBody bounds
// the time to send them.
func (s *Server) limitBody(c *gin.Context) {
	if c.Request.Body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes)
	}
	c.Next()
}

// readBody runs read (which consumes the request body) under BodyTimeout,
// then lifts the deadline again: once the body is in, an operation may
// take as long as it needs without its connection timing out. Not every
// writer supports deadlines (httptest's recorder); the size bound holds
// regardless.
func (s *Server) readBody(c *gin.Context, read func() error) error {
	rc := http.NewResponseController(c.Writer)
	_ = rc.SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout))
	if err := read(); err != nil {
		// The rest of the body is not worth waiting for: close the
		// connection after the answer instead of draining it.
		c.Header("Connection", "close")
		return err
	}
	_ = rc.SetReadDeadline(time.Time{})
	return nil
}

// authCache remembers accepted credentials for a while.
type authCache struct {
	auth Authenticator
	ttl  time.Duration
	mu   sync.Mutex
	ok   map[[32]byte]time.Time
}

func newAuthCache(a Authenticator, ttl time.Duration) *authCache {
	return &authCache{auth: a, ttl: ttl, ok: map[[32]byte]time.Time{}}
}

func (a *authCache) check(ctx context.Context, who core.Principal) error {
	if a.auth == nil {
		return nil
	}
	key := sha256.Sum256([]byte(strconv.Itoa(len(who.User)) + ":" + who.User + ":" + who.Password.Reveal()))
	now := time.Now()
	a.mu.Lock()
	exp, hit := a.ok[key]
	a.mu.Unlock()
	if hit && now.Before(exp) {
		return nil
	}
	if err := a.auth.Authenticate(ctx, who); err != nil {
		return err
	}
	if a.ttl > 0 {
		a.mu.Lock()
		if len(a.ok) > 10000 { // bound memory: drop everything, re-ask HIL
			a.ok = map[[32]byte]time.Time{}
		}
		a.ok[key] = now.Add(a.ttl)
		a.mu.Unlock()
	}
	return nil
}

// legacyPrincipal decodes the original's Authorization header: the second
// whitespace-separated token, base64 of "user:password".
func legacyPrincipal(h string) (core.Principal, error) {
	f := strings.Fields(h)
	if len(f) < 2 {
		return core.Principal{}, fault.Errorf(fault.Unauthenticated, "malformed Authorization header")
	}
	b, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil {
		return core.Principal{}, fault.Errorf(fault.Unauthenticated, "malformed Authorization header")
	}
	u, p, ok := strings.Cut(string(b), ":")
	if !ok || u == "" {
		return core.Principal{}, fault.Errorf(fault.Unauthenticated, "malformed Authorization header")
	}
	return core.Principal{User: u, Password: logging.Secret(p)}, nil
}
