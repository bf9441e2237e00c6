package apiserver

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
)

// UI is the status page's source (the daemon): what a caller may see.
type UI interface {
	// Authenticate checks the caller's HIL credentials.
	Authenticate(ctx context.Context, who core.Principal) error
	// Status gathers the page's content for who.
	Status(ctx context.Context, who core.Principal) (Status, error)
}

// Status is the content of the status page.
type Status struct {
	User      string
	Admin     bool
	Generated time.Time
	Projects  []ProjectStatus
	Nodes     []NodeStatus
	// Operations are the newest operations of the caller's projects;
	// Failures those of them that failed or were rolled back.
	Operations, Failures []core.Operation
}

// ProjectStatus is one project's images and disks.
type ProjectStatus struct {
	Name   string
	Images []core.Image
	Disks  []core.DiskInfo
}

// NodeStatus is a node with a boot config, its boot state (its last boot
// step, or "waiting for boot") and its timeline.
type NodeStatus struct {
	Project, Node, NIC, MAC, Disk string
	State                         string
	Since                         time.Time
	Timeline                      []BootStep
}

// BootStep is one step of a node's boot timeline.
type BootStep struct {
	Step   string
	At     time.Time
	Detail string
}

//go:embed ui/page.html
var uiFiles embed.FS

var uiTemplates = template.Must(template.New("ui").Funcs(template.FuncMap{
	"size": func(b uint64) string {
		const unit = 1024
		if b < unit {
			return fmt.Sprintf("%d B", b)
		}
		div, exp := uint64(unit), 0
		for n := b / unit; n >= unit; n /= unit {
			div *= unit
			exp++
		}
		return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
	},
	"stateClass": func(st string) string {
		switch st {
		case "done":
			return "ok"
		case "failed", "rolled_back":
			return "bad"
		}
		return "run"
	},
}).ParseFS(uiFiles, "ui/page.html"))

// uiCookie is the session cookie's name.
const uiCookie = "bmi_session"

// uiSessionTTL bounds a session's life; uiMaxSessions bounds the sessions
// kept (the oldest go first).
const (
	uiSessionTTL  = 8 * time.Hour
	uiMaxSessions = 10000
	uiRefresh     = 5 // seconds between reloads of the page
)

// uiSessions maps session tokens to the credentials they were opened with.
// They live in memory only: a bmid restart signs everyone out.
type uiSessions struct {
	mu sync.Mutex
	m  map[string]uiSession
}

type uiSession struct {
	who     core.Principal
	expires time.Time
}

func (u *uiSessions) open(who core.Principal) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fault.Errorf(fault.Internal, "session token: %v", err)
	}
	tok := hex.EncodeToString(b[:])
	now := time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil {
		u.m = map[string]uiSession{}
	}
	if len(u.m) >= uiMaxSessions {
		var oldest string
		for k, s := range u.m {
			if now.After(s.expires) {
				delete(u.m, k)
			} else if oldest == "" || s.expires.Before(u.m[oldest].expires) {
				oldest = k
			}
		}
		if len(u.m) >= uiMaxSessions {
			delete(u.m, oldest)
		}
	}
	u.m[tok] = uiSession{who: who, expires: now.Add(uiSessionTTL)}
	return tok, nil
}

func (u *uiSessions) get(tok string) (core.Principal, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	s, ok := u.m[tok]
	if !ok || time.Now().After(s.expires) {
		delete(u.m, tok)
		return core.Principal{}, false
	}
	return s.who, true
}

func (u *uiSessions) close(tok string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.m, tok)
}

func (s *Server) uiRoutes() {
	e := s.engine
	e.GET("/ui", func(c *gin.Context) { c.Redirect(http.StatusSeeOther, "/ui/") })
	e.GET("/ui/", s.uiPage)
	e.GET("/ui/login", s.uiLoginForm)
	e.POST("/ui/login", s.uiLogin)
	e.POST("/ui/logout", s.uiLogout)
}

// uiHeaders forbid scripts, framing and caching: the page has no
// JavaScript at all, and a name that got past escaping could run none.
func uiHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

func (s *Server) render(c *gin.Context, status int, name string, data any) {
	uiHeaders(c)
	c.Status(status)
	c.Header("Content-Type", "text/html; charset=utf-8")
	if err := uiTemplates.ExecuteTemplate(c.Writer, name, data); err != nil {
		s.log.Error("status page: render", "err", err)
	}
}

type loginData struct {
	Refresh int
	Error   string
}

type pageData struct {
	Refresh int
	Status  Status
}

// uiWho is the caller of a page: the session's, else HTTP basic
// credentials (for scripts and curl).
func (s *Server) uiWho(c *gin.Context) (core.Principal, bool) {
	if ck, err := c.Request.Cookie(uiCookie); err == nil {
		if who, ok := s.ui.get(ck.Value); ok {
			return who, true
		}
	}
	if who, ok := basicAuth(c.Request); ok && s.cfg.UI.Authenticate(c.Request.Context(), who) == nil {
		return who, true
	}
	return core.Principal{}, false
}

func (s *Server) uiPage(c *gin.Context) {
	if s.cfg.UI == nil {
		s.failText(c, fault.Errorf(fault.NotFound, "this server has no status page"))
		return
	}
	who, ok := s.uiWho(c)
	if !ok {
		c.Redirect(http.StatusSeeOther, "/ui/login")
		return
	}
	st, err := s.cfg.UI.Status(c.Request.Context(), who)
	if err != nil {
		status, _, msg := statusOf(err)
		s.render(c, status, "login", loginData{Error: msg})
		return
	}
	s.render(c, http.StatusOK, "page", pageData{Refresh: uiRefresh, Status: st})
}

func (s *Server) uiLoginForm(c *gin.Context) {
	if s.cfg.UI == nil {
		s.failText(c, fault.Errorf(fault.NotFound, "this server has no status page"))
		return
	}
	s.render(c, http.StatusOK, "login", loginData{})
}

// sameOrigin refuses a form posted from another site (login CSRF): the
// browser's Origin, or else Sec-Fetch-Site, must say it is ours.
func sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		return err == nil && u.Host == r.Host
	}
	site := r.Header.Get("Sec-Fetch-Site")
	return site == "" || site == "same-origin" || site == "none"
}

func (s *Server) uiLogin(c *gin.Context) {
	if s.cfg.UI == nil || !sameOrigin(c.Request) {
		s.render(c, http.StatusForbidden, "login", loginData{Error: "sign in from this server's own page"})
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, 16<<10)
	who := core.Principal{User: c.PostForm("user"), Password: logging.Secret(c.PostForm("password"))}
	ip := c.ClientIP()
	if lim := s.cfg.AuthFailures; lim != nil && lim.Refuse("ip:"+ip, "user:"+who.User) {
		s.render(c, http.StatusTooManyRequests, "login", loginData{Error: "too many failed sign-ins; try again later"})
		return
	}
	if who.User == "" || s.cfg.UI.Authenticate(c.Request.Context(), who) != nil {
		s.log.Warn("status page sign-in failed", "remote", ip, "user", who.User)
		if lim := s.cfg.AuthFailures; lim != nil {
			lim.Fail("ip:" + ip)
			if who.User != "" {
				lim.Fail("user:" + who.User)
			}
		}
		s.render(c, http.StatusUnauthorized, "login", loginData{Error: "wrong user name or password"})
		return
	}
	tok, err := s.ui.open(who)
	if err != nil {
		s.render(c, http.StatusInternalServerError, "login", loginData{Error: "cannot open a session"})
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: uiCookie, Value: tok, Path: "/ui/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: s.cfg.TLSCert != "" && s.cfg.TLSKey != "",
		MaxAge: int(uiSessionTTL / time.Second)})
	c.Redirect(http.StatusSeeOther, "/ui/")
}

func (s *Server) uiLogout(c *gin.Context) {
	if ck, err := c.Request.Cookie(uiCookie); err == nil && sameOrigin(c.Request) {
		s.ui.close(ck.Value)
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: uiCookie, Value: "", Path: "/ui/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	c.Redirect(http.StatusSeeOther, "/ui/login")
}
