package apiserver

import (
	"errors"
	"mime"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/bmi-go/bmi/service/fault"
)

// legacyRoutes are the original BMI's endpoints (Picasso, reference §4.2):
// same paths and methods, form-encoded bodies (also on DELETE), the same
// success bodies ("Success" or JSON) and plain-text error bodies.
func (s *Server) legacyRoutes() {
	g := s.engine.Group("", s.limitBody, s.legacyAuth)
	g.POST("/list_images/", s.legacyListImages)
	g.PUT("/provision/", s.legacyProvision)
	g.DELETE("/deprovision/", s.legacyDeprovision)
	g.PUT("/create_snapshot/", s.legacyCreateSnapshot)
	g.POST("/list_snapshots/", s.legacyListSnapshots)
	g.DELETE("/remove_image/", s.legacyRemoveImage)
	g.PUT("/create_disk", s.legacyCreateDisk)
	g.DELETE("/delete_disk", s.legacyDeleteDisk)
	for path := range legacyMethods {
		s.engine.OPTIONS(path, legacyOptions)
	}
	// Flask answered the paths without their trailing slash with a
	// permanent redirect that keeps method and body; so do we.
	for _, r := range []struct{ method, path string }{{"POST", "/list_images"}, {"PUT", "/provision"},
		{"DELETE", "/deprovision"}, {"PUT", "/create_snapshot"}, {"POST", "/list_snapshots"}, {"DELETE", "/remove_image"}} {
		s.engine.Handle(r.method, r.path, func(c *gin.Context) {
			u := *c.Request.URL
			u.Path += "/"
			c.Redirect(http.StatusPermanentRedirect, u.RequestURI())
		})
	}
}

// errNoAuth is the original's answer to a request without Authorization.
var errNoAuth = fault.Errorf(fault.Invalid, "No Authentication Details Given")

// legacyAuth takes the caller from the Authorization header as the
// original did, and parses the form (body, also for DELETE).
func (s *Server) legacyAuth(c *gin.Context) {
	h := c.GetHeader("Authorization")
	if h == "" {
		s.failText(c, errNoAuth)
		return
	}
	who, err := legacyPrincipal(h)
	if err != nil {
		s.failText(c, err)
		return
	}
	if err := s.auth.check(c.Request.Context(), who); err != nil {
		s.failText(c, err)
		return
	}
	c.Set(keyPrincipal, who)
	if err := s.readBody(c, func() error { return parseForm(c.Request) }); err != nil {
		s.flaskError(c, http.StatusBadRequest, err) // Flask: an empty form, then a missing field
		return
	}
	c.Next()
}

// parseForm parses a form body whatever the method (net/http skips DELETE
// bodies); a non-form body type is refused.
func parseForm(r *http.Request) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/x-www-form-urlencoded" && mt != "multipart/form-data") {
			return fault.Errorf(fault.Invalid, "request body must be form-encoded, not %q", ct)
		}
	}
	method := r.Method
	if method == http.MethodDelete {
		r.Method = http.MethodPost // ParseForm reads bodies of POST, PUT and PATCH only
		defer func() { r.Method = method }()
	}
	var err error
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		err = r.ParseMultipartForm(1 << 20)
	} else {
		err = r.ParseForm()
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fault.Errorf(fault.Invalid, "request body is larger than %d bytes", mbe.Limit)
		}
		return fault.Errorf(fault.Invalid, "malformed form body: %v", err)
	}
	return nil
}

// fields returns the named form fields (from the body), or answers
// Flask's 400 page (a KeyError of request.form), logging the field.
func (s *Server) fields(c *gin.Context, names ...string) ([]string, bool) {
	out := make([]string, len(names))
	for i, n := range names {
		vs, ok := c.Request.PostForm[n]
		if !ok || len(vs) == 0 {
			s.flaskError(c, http.StatusBadRequest, fault.Errorf(fault.Invalid, "missing form field %q", n))
			return nil, false
		}
		out[i] = vs[0]
	}
	return out, true
}

func legacyOK(c *gin.Context) {
	c.Data(http.StatusOK, legacyContentType, []byte("Success"))
}

// legacyJSON answers v as the original's json.dumps wrote it, as text/html.
func (s *Server) legacyJSON(c *gin.Context, v any) {
	b, err := pyDumps(v)
	if err != nil {
		s.failText(c, err)
		return
	}
	c.Data(http.StatusOK, legacyContentType, b)
}

func (s *Server) legacyDone(c *gin.Context, err error) {
	if err != nil {
		s.failText(c, err)
		return
	}
	legacyOK(c)
}

func (s *Server) legacyListImages(c *gin.Context) {
	f, ok := s.fields(c, "project")
	if !ok {
		return
	}
	ims, err := s.cfg.Ops.ListImages(c.Request.Context(), principal(c), f[0])
	if err != nil {
		s.failText(c, err)
		return
	}
	names := make([]string, 0, len(ims))
	for _, im := range ims {
		names = append(names, im.Name)
	}
	s.legacyJSON(c, names)
}

func (s *Server) legacyListSnapshots(c *gin.Context) {
	f, ok := s.fields(c, "project")
	if !ok {
		return
	}
	ims, err := s.cfg.Ops.ListSnapshots(c.Request.Context(), principal(c), f[0])
	if err != nil {
		s.failText(c, err)
		return
	}
	pairs := make([][2]string, 0, len(ims))
	for _, im := range ims {
		pairs = append(pairs, [2]string{im.Name, im.Parent})
	}
	s.legacyJSON(c, pairs)
}

// legacyProvision is V-B's provision (node, img, nic) and V-C's (node,
// disk_name, nic: boot an existing disk).
func (s *Server) legacyProvision(c *gin.Context) {
	if _, vc := c.Request.PostForm["disk_name"]; vc {
		f, ok := s.fields(c, "project", "node", "disk_name", "nic")
		if !ok {
			return
		}
		_, err := s.cfg.Ops.SetBoot(c.Request.Context(), principal(c), f[0], f[1], f[3], f[2])
		s.legacyDone(c, err)
		return
	}
	f, ok := s.fields(c, "project", "node", "img", "nic")
	if !ok || !s.legacyNetwork(c, f[0]) {
		return
	}
	_, err := s.cfg.Ops.Provision(c.Request.Context(), principal(c), f[0], f[1], f[2], f[3])
	s.legacyDone(c, err)
}

// legacyNetwork checks V-A's network field, when the form has one, against
// the provisioning network; it answers the error itself.
func (s *Server) legacyNetwork(c *gin.Context, project string) bool {
	vs, ok := c.Request.PostForm["network"]
	if !ok || len(vs) == 0 {
		return true
	}
	if err := s.cfg.Ops.CheckNetwork(c.Request.Context(), principal(c), project, vs[0]); err != nil {
		s.failText(c, err)
		return false
	}
	return true
}

func (s *Server) legacyDeprovision(c *gin.Context) {
	f, ok := s.fields(c, "project", "node", "nic")
	if !ok || !s.legacyNetwork(c, f[0]) {
		return
	}
	s.legacyDone(c, s.cfg.Ops.Deprovision(c.Request.Context(), principal(c), f[0], f[1], f[2]))
}

// legacyCreateSnapshot takes V-B's node or V-C's disk_name.
func (s *Server) legacyCreateSnapshot(c *gin.Context) {
	src := "node"
	if _, vc := c.Request.PostForm["disk_name"]; vc {
		src = "disk_name"
	}
	f, ok := s.fields(c, "project", src, "snap_name")
	if !ok {
		return
	}
	_, err := s.cfg.Ops.CreateSnapshot(c.Request.Context(), principal(c), f[0], f[1], f[2])
	s.legacyDone(c, err)
}

func (s *Server) legacyRemoveImage(c *gin.Context) {
	f, ok := s.fields(c, "project", "img")
	if !ok {
		return
	}
	s.legacyDone(c, s.cfg.Ops.RemoveImage(c.Request.Context(), principal(c), f[0], f[1]))
}

// legacyCreateDisk answers the new disk's Ceph name as a JSON string, and
// 409 "Disk exists. Endpoint:<ceph name>" for a disk that exists, as V-C.
func (s *Server) legacyCreateDisk(c *gin.Context) {
	f, ok := s.fields(c, "project", "disk_name", "img")
	if !ok {
		return
	}
	who := principal(c)
	d, err := s.cfg.Ops.CreateDisk(c.Request.Context(), who, f[0], f[2], f[1])
	if errors.Is(err, fault.ErrExists) {
		if im, serr := s.cfg.Ops.ShowImage(c.Request.Context(), who, f[0], f[1]); serr == nil {
			// V-C's one 409.
			s.logFailure(c, http.StatusConflict, err)
			c.Data(http.StatusConflict, legacyContentType, []byte("Disk exists. Endpoint:"+im.CephName))
			return
		}
	}
	if err != nil {
		s.failText(c, err)
		return
	}
	s.legacyJSON(c, d.CephName)
}

func (s *Server) legacyDeleteDisk(c *gin.Context) {
	f, ok := s.fields(c, "project", "disk_name")
	if !ok {
		return
	}
	s.legacyDone(c, s.cfg.Ops.DeleteDisk(c.Request.Context(), principal(c), f[0], f[1]))
}
