package apiserver

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
)

// routes registers every route. The OpenAPI document (openapi.yaml) lists
// the same routes; TestOpenAPIMatchesRoutes checks both ways.
func (s *Server) routes() {
	e := s.engine
	e.Use(s.accessLog, s.recoverPanics, s.audit, s.throttle)
	e.NoRoute(s.noRoute)
	e.NoMethod(s.noMethod)

	e.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", gin.WrapH(promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})))
	e.GET(api.Prefix+"/openapi.json", func(c *gin.Context) { c.Data(http.StatusOK, "application/json", s.spec) })

	s.legacyRoutes()
	s.uiRoutes()

	v1 := e.Group(api.Prefix, s.authJSON, s.validateParams)
	// Uploads stream and are not bound by MaxBodyBytes.
	v1.PUT("/projects/:project/images/:image/data", s.upload)
	v1.GET("/projects/:project/images/:image/data", s.download)

	g := v1.Group("", s.limitBody)
	g.GET("/projects", s.listProjects)
	g.POST("/projects", s.createProject)
	g.DELETE("/projects/:project", s.removeProject)

	g.GET("/projects/:project/images", s.listImages)
	g.POST("/projects/:project/imports", s.importImage)
	g.GET("/projects/:project/images/:image", s.showImage)
	g.DELETE("/projects/:project/images/:image", s.removeImage)
	g.POST("/projects/:project/images/:image/copy", s.copyImage)
	g.POST("/projects/:project/images/:image/move", s.moveImage)
	g.POST("/projects/:project/images/:image/export", s.exportImage)

	g.GET("/projects/:project/snapshots", s.listSnapshots)
	g.POST("/projects/:project/snapshots", s.createSnapshot)
	g.DELETE("/projects/:project/snapshots/:snapshot", s.removeSnapshot)

	g.GET("/projects/:project/disks", s.listDisks)
	g.POST("/projects/:project/disks", s.createDisk)
	g.GET("/projects/:project/disks/:disk", s.showDisk)
	g.GET("/projects/:project/disks/:disk/sanboot", s.sanboot)
	g.DELETE("/projects/:project/disks/:disk", s.deleteDisk)

	g.GET("/targets", s.listAllTargets)
	g.GET("/projects/:project/targets", s.listTargets)
	g.PUT("/projects/:project/targets/:disk", s.exportDisk)
	g.DELETE("/projects/:project/targets/:disk", s.unexportDisk)

	g.GET("/projects/:project/nodes", s.listBoots)
	g.GET("/projects/:project/nodes/:node/boot", s.showBoot)
	g.PUT("/projects/:project/nodes/:node/boot", s.setBoot)
	g.DELETE("/projects/:project/nodes/:node/boot", s.clearBoot)
	g.POST("/projects/:project/nodes/:node/provision", s.provision)
	g.DELETE("/projects/:project/nodes/:node/provision", s.deprovision)
	g.GET("/projects/:project/nodes/:node/ip", s.nodeIP)
	g.GET("/projects/:project/nodes/:node/boot.ipxe", s.bootScript)
	g.GET("/projects/:project/nodes/:node/timeline", s.nodeTimeline)

	g.GET("/projects/:project/targets/:disk/acl", s.showACL)
	g.PATCH("/projects/:project/targets/:disk/acl", s.changeACL)
	g.POST("/projects/:project/targets/:disk/rotate-secret", s.rotateSecret)
	g.GET("/projects/:project/targets/:disk/credentials", s.credentials)
	g.GET("/audit", s.listAudit)

	v1.GET("/events", s.events) // a stream: not under limitBody's body timeout
	g.GET("/operations", s.listOps)
	g.GET("/operations/:id", s.showOp)
	g.GET("/db/images", s.dbList)
	g.POST("/reconcile", s.reconcile)
}

func isLegacyPath(p string) bool {
	return !strings.HasPrefix(p, api.Prefix) && p != "/healthz" && p != "/readyz" && p != "/metrics" && !strings.HasPrefix(p, "/ui")
}

func (s *Server) noRoute(c *gin.Context) {
	err := fault.Errorf(fault.NotFound, "no route %s %s", c.Request.Method, c.Request.URL.Path)
	if isLegacyPath(c.Request.URL.Path) {
		s.flaskError(c, http.StatusNotFound, nil)
		return
	}
	s.fail(c, err)
}

func (s *Server) noMethod(c *gin.Context) {
	msg := "method " + c.Request.Method + " is not allowed on " + c.Request.URL.Path
	if isLegacyPath(c.Request.URL.Path) {
		if allow := legacyAllow(c.Request.URL.Path); allow != "" {
			c.Header("Allow", allow)
		}
		s.flaskError(c, http.StatusMethodNotAllowed, nil)
		return
	}
	c.AbortWithStatusJSON(http.StatusMethodNotAllowed, api.ErrorBody{Error: api.ErrorDetail{
		Kind: string(fault.Invalid), Message: msg, RequestID: requestID(c)}})
}

func (s *Server) readyz(c *gin.Context) {
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 5*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			s.log.Warn("not ready", "err", err)
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "not ready", "reason": err.Error()})
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

// long runs a long operation. By default (or with wait=true) it answers
// when the operation is over, with the operation id in the
// X-BMI-Operation header. With wait=false it answers 202 and the
// operation's id as soon as the operation is journaled; the operation
// goes on in the background.
func (s *Server) long(c *gin.Context, kind string, okStatus int, fn func(ctx context.Context) (any, error)) {
	wait := true
	switch c.Query("wait") {
	case "", "true", "1":
	case "false", "0":
		wait = false
	default:
		s.fail(c, fault.Errorf(fault.Invalid, "wait must be true or false, not %q", c.Query("wait")))
		return
	}
	s.runLong(c, kind, okStatus, wait, fn)
}

// runLong is long with the wait decision made (uploads always wait: the
// request body is their data).
func (s *Server) runLong(c *gin.Context, kind string, okStatus int, wait bool, fn func(ctx context.Context) (any, error)) {
	ids := make(chan string, 1)
	ctx := core.WithOpNotify(c.Request.Context(), func(id string) {
		select {
		case ids <- id:
		default:
		}
	})
	type result struct {
		body any
		err  error
	}
	run := func(ctx context.Context) result {
		start := time.Now()
		body, err := fn(ctx)
		outcome := "ok"
		if err != nil {
			outcome = string(fault.Of(err))
		}
		s.metrics.op(kind, outcome, time.Since(start))
		return result{body, err}
	}
	answer := func(r result) {
		select {
		case id := <-ids:
			c.Header(api.OperationHeader, id)
		default:
		}
		if r.err != nil {
			s.fail(c, r.err)
			return
		}
		if r.body == nil {
			c.Status(http.StatusNoContent)
			return
		}
		c.JSON(okStatus, r.body)
	}
	if wait {
		answer(run(ctx))
		return
	}
	s.mu.Lock()
	if s.stopping { // shutting down: no new background work
		s.mu.Unlock()
		answer(run(ctx))
		return
	}
	s.bg.Add(1)
	s.mu.Unlock()
	done := make(chan result, 1)
	bgctx := context.WithoutCancel(ctx)
	rid := requestID(c)
	go func() {
		defer s.bg.Done()
		r := run(bgctx)
		if r.err != nil {
			s.log.Warn("background operation failed", "request_id", rid, "kind", kind, "err", r.err)
		}
		done <- r
	}()
	select {
	case id := <-ids:
		c.Header(api.OperationHeader, id)
		c.JSON(http.StatusAccepted, api.Accepted{Operation: id, Href: api.Prefix + "/operations/" + id})
	case r := <-done:
		answer(r)
	}
}
