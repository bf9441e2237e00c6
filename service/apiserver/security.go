package apiserver

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
)

// Security is what the server needs for initiator ACLs and the audit log
// (the daemon's adapter over the state DB and the iSCSI target).
type Security interface {
	// ACL returns a disk's initiator ACL; who must be a member of project.
	ACL(ctx context.Context, who core.Principal, project, disk string) (api.ACL, error)
	// ChangeACL adds and removes initiator names of a disk's ACL.
	ChangeACL(ctx context.Context, who core.Principal, project, disk string, ch api.ACLChange) (api.ACL, error)
	// BootScript renders the iPXE script of project's node as the node
	// gets it, except that the CHAP secret is replaced by a placeholder.
	BootScript(ctx context.Context, who core.Principal, project, node string) ([]byte, error)
	// Credentials returns a disk's CHAP credentials; who must be an
	// administrator.
	Credentials(ctx context.Context, who core.Principal, project, disk string) (api.Credentials, error)
	// RotateSecret gives a disk's target a new CHAP secret (never shown).
	RotateSecret(ctx context.Context, who core.Principal, project, disk string) (core.Target, error)
	// Audit returns audit entries, newest first; who must be an administrator.
	Audit(ctx context.Context, who core.Principal, q api.AuditQuery) ([]api.AuditEntry, error)
	// Record appends an entry to the audit log.
	Record(ctx context.Context, e api.AuditEntry)
}

// Limiter counts failures per key (*guard.Limiter).
type Limiter interface {
	// Refuse reports whether an attempt from source as user is refused
	// unchecked.
	Refuse(source, user string) bool
	// Fail records one failure of key.
	Fail(key string)
}

// keyAuditRead marks a read that is audited like a change (secrets).
const keyAuditRead = "bmi.audit_read"

// requestUser is the user name a request claims (basic or legacy
// Authorization), verified or not.
func requestUser(r *http.Request) string {
	if u, _, ok := r.BasicAuth(); ok {
		return u
	}
	if who, err := legacyPrincipal(r.Header.Get("Authorization")); err == nil {
		return who.User
	}
	return ""
}

// throttle refuses, with 429, requests from a source address that failed
// to authenticate too often, or from a failing source as a user name that
// did (AuthFailures.Refuse); the caller's credentials are not even
// checked, so HIL never sees a guesser's tries, and the real user, from an
// address that has not failed, is not locked out.
func (s *Server) throttle(c *gin.Context) {
	lim := s.cfg.AuthFailures
	if lim == nil || c.Request.Header.Get("Authorization") == "" {
		c.Next()
		return
	}
	ip, user := c.ClientIP(), requestUser(c.Request)
	if lim.Refuse("ip:"+ip, "user:"+user) {
		s.log.Warn("api request throttled: too many failed authentications", "remote", ip, "user", user,
			"path", c.Request.URL.Path, "request_id", requestID(c))
		closeIfBody(c)
		c.Header("Retry-After", strconv.Itoa(60))
		c.AbortWithStatusJSON(http.StatusTooManyRequests, api.ErrorBody{Error: api.ErrorDetail{
			Kind: "throttled", Message: "too many failed authentications from this address or for this user; try again later",
			RequestID: requestID(c)}})
		return
	}
	c.Next()
}

// authFailed counts a refused authentication against the caller's address
// and user name, with a log line.
func (s *Server) authFailed(c *gin.Context) {
	ip, user := c.ClientIP(), requestUser(c.Request)
	s.log.Warn("api authentication failed", "remote", ip, "user", user, "path", c.Request.URL.Path, "request_id", requestID(c))
	if lim := s.cfg.AuthFailures; lim != nil {
		lim.Fail("ip:" + ip)
		if user != "" {
			lim.Fail("user:" + user)
		}
	}
}

// audit records every state-changing call and every refused or throttled
// authentication in the audit log, once the answer is known.
func (s *Server) audit(c *gin.Context) {
	c.Next()
	if s.cfg.Security == nil {
		return
	}
	status := c.Writer.Status()
	switch c.Request.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		if status != http.StatusUnauthorized && status != http.StatusTooManyRequests && !c.GetBool(keyAuditRead) {
			return
		}
	}
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	e := api.AuditEntry{Kind: "api", Actor: requestUser(c.Request), Source: c.ClientIP(),
		Action: c.Request.Method + " " + route, Object: c.Request.URL.Path, Outcome: strconv.Itoa(status)}
	if errs := c.Errors.Last(); errs != nil {
		e.Detail = errs.Error()
	}
	s.cfg.Security.Record(context.WithoutCancel(c.Request.Context()), e)
}

func (s *Server) security() (Security, error) {
	if s.cfg.Security == nil {
		return nil, fault.Errorf(fault.NotFound, "this bmid keeps no ACLs or audit log")
	}
	return s.cfg.Security, nil
}

func (s *Server) showACL(c *gin.Context) {
	sec, err := s.security()
	if err == nil {
		var acl api.ACL
		if acl, err = sec.ACL(c.Request.Context(), principal(c), c.Param("project"), c.Param("disk")); err == nil {
			c.JSON(http.StatusOK, acl)
			return
		}
	}
	s.fail(c, err)
}

func (s *Server) changeACL(c *gin.Context) {
	var ch api.ACLChange
	if !body(s, c, &ch) {
		return
	}
	if len(ch.Add)+len(ch.Remove) == 0 {
		s.fail(c, fault.Errorf(fault.Invalid, "nothing to change: give add or remove"))
		return
	}
	for _, n := range append(append([]string{}, ch.Add...), ch.Remove...) {
		if err := validInitiator(n); err != nil {
			s.fail(c, err)
			return
		}
	}
	sec, err := s.security()
	if err == nil {
		var acl api.ACL
		if acl, err = sec.ChangeACL(c.Request.Context(), principal(c), c.Param("project"), c.Param("disk"), ch); err == nil {
			c.JSON(http.StatusOK, acl)
			return
		}
	}
	s.fail(c, err)
}

// validInitiator accepts an iqn. name (lower case, RFC 3720) of at most
// 223 bytes.
func validInitiator(n string) error {
	ok := len(n) >= 12 && len(n) <= 223 && strings.HasPrefix(n, "iqn.") && n == strings.ToLower(n)
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune(".:-_", r)) {
			ok = false
		}
	}
	if !ok {
		return fault.Errorf(fault.Invalid, "initiator name %.80q is not a lower-case iqn. name", n)
	}
	return nil
}

func (s *Server) listAudit(c *gin.Context) {
	q := api.AuditQuery{Kind: c.Query("kind"), Actor: c.Query("actor"), Source: c.Query("source")}
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 10000 {
			s.fail(c, fault.Errorf(fault.Invalid, "limit %.20q: want 1 to 10000", l))
			return
		}
		q.Limit = n
	}
	if q.Kind != "" && q.Kind != "api" && q.Kind != "iscsi" && q.Kind != "boot" {
		s.fail(c, fault.Errorf(fault.Invalid, "kind %.20q: want api, iscsi or boot", q.Kind))
		return
	}
	sec, err := s.security()
	if err == nil {
		var out []api.AuditEntry
		if out, err = sec.Audit(c.Request.Context(), principal(c), q); err == nil {
			if out == nil {
				out = []api.AuditEntry{}
			}
			c.JSON(http.StatusOK, out)
			return
		}
	}
	s.fail(c, err)
}

func (s *Server) rotateSecret(c *gin.Context) {
	sec, err := s.security()
	if err == nil {
		var t core.Target
		if t, err = sec.RotateSecret(c.Request.Context(), principal(c), c.Param("project"), c.Param("disk")); err == nil {
			c.JSON(http.StatusOK, toTarget(t))
			return
		}
	}
	s.fail(c, err)
}

func (s *Server) bootScript(c *gin.Context) {
	sec, err := s.security()
	if err == nil {
		var b []byte
		if b, err = sec.BootScript(c.Request.Context(), principal(c), c.Param("project"), c.Param("node")); err == nil {
			c.Header("Cache-Control", "no-store")
			c.Data(http.StatusOK, "text/plain; charset=utf-8", b)
			return
		}
	}
	s.fail(c, err)
}

func (s *Server) credentials(c *gin.Context) {
	c.Set(keyAuditRead, true)
	sec, err := s.security()
	if err == nil {
		var cr api.Credentials
		if cr, err = sec.Credentials(c.Request.Context(), principal(c), c.Param("project"), c.Param("disk")); err == nil {
			c.Header("Cache-Control", "no-store")
			c.JSON(http.StatusOK, cr)
			return
		}
	}
	s.fail(c, err)
}
