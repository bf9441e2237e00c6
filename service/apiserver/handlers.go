package apiserver

import (
	"context"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
)

// body decodes the request's JSON body into dst; it answers the error
// itself and returns false when the body is bad.
func body[T any](s *Server, c *gin.Context, dst *T) bool {
	if err := s.readBody(c, func() error { return decodeJSON(c.GetHeader("Content-Type"), c.Request.Body, dst) }); err != nil {
		s.fail(c, err)
		return false
	}
	return true
}

// required answers 400 for the first empty field of pairs (name, value).
func required(s *Server, c *gin.Context, pairs ...string) bool {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			s.fail(c, fault.Errorf(fault.Invalid, "field %q is required", pairs[i]))
			return false
		}
	}
	return true
}

// reply answers 200 with v, or the error.
func reply[T any](s *Server, c *gin.Context, v T, err error) {
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

// noContent answers 204, or the error.
func (s *Server) noContent(c *gin.Context, err error) {
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func boolQuery(c *gin.Context, name string) (bool, error) {
	v := c.Query(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fault.Errorf(fault.Invalid, "%s must be true or false, not %q", name, v)
	}
	return b, nil
}

func (s *Server) listProjects(c *gin.Context) {
	ps, err := s.cfg.Ops.ListProjects(c.Request.Context(), principal(c))
	reply(s, c, mapList(ps, toProject), err)
}

func (s *Server) createProject(c *gin.Context) {
	var req api.CreateProjectRequest
	if !body(s, c, &req) || !required(s, c, "name", req.Name) {
		return
	}
	p, err := s.cfg.Ops.CreateProject(c.Request.Context(), principal(c), req.Name)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, toProject(p))
}

func (s *Server) removeProject(c *gin.Context) {
	force, err := boolQuery(c, "force")
	if err != nil {
		s.fail(c, err)
		return
	}
	s.noContent(c, s.cfg.Ops.RemoveProject(c.Request.Context(), principal(c), c.Param("project"), force))
}

func (s *Server) listImages(c *gin.Context) {
	ims, err := s.cfg.Ops.ListImages(c.Request.Context(), principal(c), c.Param("project"))
	reply(s, c, mapList(ims, toImage), err)
}

func (s *Server) showImage(c *gin.Context) {
	im, err := s.cfg.Ops.ShowImage(c.Request.Context(), principal(c), c.Param("project"), c.Param("image"))
	reply(s, c, toImage(im), err)
}

func (s *Server) removeImage(c *gin.Context) {
	s.noContent(c, s.cfg.Ops.RemoveImage(c.Request.Context(), principal(c), c.Param("project"), c.Param("image")))
}

func (s *Server) importImage(c *gin.Context) {
	var req api.ImportRequest
	if !body(s, c, &req) || !required(s, c, "source", req.Source) {
		return
	}
	who, project := principal(c), c.Param("project")
	s.long(c, "import", http.StatusCreated, func(ctx context.Context) (any, error) {
		im, err := s.cfg.Ops.ImportImage(ctx, who, project, req.Source, core.ImportOptions{Name: req.Name, Snap: req.Snap, Protect: req.Protect})
		return toImage(im), err
	})
}

func (s *Server) copyImage(c *gin.Context) {
	var req api.CopyRequest
	if !body(s, c, &req) || !required(s, c, "dest_project", req.DestProject) {
		return
	}
	who, project, image := principal(c), c.Param("project"), c.Param("image")
	s.long(c, "copy", http.StatusCreated, func(ctx context.Context) (any, error) {
		im, err := s.cfg.Ops.CopyImage(ctx, who, project, image, req.DestProject, req.Name)
		return toImage(im), err
	})
}

func (s *Server) moveImage(c *gin.Context) {
	var req api.CopyRequest
	if !body(s, c, &req) || !required(s, c, "dest_project", req.DestProject) {
		return
	}
	im, err := s.cfg.Ops.MoveImage(c.Request.Context(), principal(c), c.Param("project"), c.Param("image"), req.DestProject, req.Name)
	reply(s, c, toImage(im), err)
}

func (s *Server) exportImage(c *gin.Context) {
	var req api.ExportRequest
	if !body(s, c, &req) || !required(s, c, "dest", req.Dest) {
		return
	}
	who, project, image := principal(c), c.Param("project"), c.Param("image")
	s.long(c, "export", http.StatusOK, func(ctx context.Context) (any, error) {
		return nil, s.cfg.Ops.ExportImage(ctx, who, project, image, req.Dest)
	})
}

func (s *Server) listSnapshots(c *gin.Context) {
	ims, err := s.cfg.Ops.ListSnapshots(c.Request.Context(), principal(c), c.Param("project"))
	reply(s, c, mapList(ims, toImage), err)
}

func (s *Server) createSnapshot(c *gin.Context) {
	var req api.CreateSnapshotRequest
	if !body(s, c, &req) || !required(s, c, "disk", req.Disk, "name", req.Name) {
		return
	}
	who, project := principal(c), c.Param("project")
	s.long(c, "snapshot", http.StatusCreated, func(ctx context.Context) (any, error) {
		im, err := s.cfg.Ops.CreateSnapshot(ctx, who, project, req.Disk, req.Name)
		return toImage(im), err
	})
}

func (s *Server) removeSnapshot(c *gin.Context) {
	project, name := c.Param("project"), c.Param("snapshot")
	im, err := s.cfg.Ops.ShowImage(c.Request.Context(), principal(c), project, name)
	if err == nil && im.Kind != core.KindSnapshot {
		err = fault.Errorf(fault.Invalid, "%q in project %q is not a snapshot (kind %s)", name, project, im.Kind)
	}
	if err == nil {
		err = s.cfg.Ops.RemoveImage(c.Request.Context(), principal(c), project, name)
	}
	s.noContent(c, err)
}

func (s *Server) listDisks(c *gin.Context) {
	ds, err := s.cfg.Ops.ListDisks(c.Request.Context(), principal(c), c.Param("project"))
	reply(s, c, mapList(ds, toDisk), err)
}

func (s *Server) showDisk(c *gin.Context) {
	project, name := c.Param("project"), c.Param("disk")
	ds, err := s.cfg.Ops.ListDisks(c.Request.Context(), principal(c), project)
	if err != nil {
		s.fail(c, err)
		return
	}
	for _, d := range ds {
		if d.Name == name {
			c.JSON(http.StatusOK, s.disk(d))
			return
		}
	}
	s.fail(c, fault.Errorf(fault.NotFound, "disk %q in project %q not found", name, project))
}

func (s *Server) createDisk(c *gin.Context) {
	var req api.CreateDiskRequest
	if !body(s, c, &req) || !required(s, c, "image", req.Image, "name", req.Name) {
		return
	}
	who, project := principal(c), c.Param("project")
	s.long(c, "create-disk", http.StatusCreated, func(ctx context.Context) (any, error) {
		d, err := s.cfg.Ops.CreateDisk(ctx, who, project, req.Image, req.Name)
		return s.disk(d), err
	})
}

func (s *Server) deleteDisk(c *gin.Context) {
	s.noContent(c, s.cfg.Ops.DeleteDisk(c.Request.Context(), principal(c), c.Param("project"), c.Param("disk")))
}

func (s *Server) listAllTargets(c *gin.Context) {
	ts, err := s.cfg.Ops.ListTargets(c.Request.Context(), principal(c), "")
	reply(s, c, mapList(ts, toTargetInfo), err)
}

func (s *Server) listTargets(c *gin.Context) {
	ts, err := s.cfg.Ops.ListTargets(c.Request.Context(), principal(c), c.Param("project"))
	reply(s, c, mapList(ts, toTargetInfo), err)
}

func (s *Server) exportDisk(c *gin.Context) {
	t, err := s.cfg.Ops.ExportDisk(c.Request.Context(), principal(c), c.Param("project"), c.Param("disk"))
	reply(s, c, toTarget(t), err)
}

func (s *Server) unexportDisk(c *gin.Context) {
	s.noContent(c, s.cfg.Ops.UnexportDisk(c.Request.Context(), principal(c), c.Param("project"), c.Param("disk")))
}

func (s *Server) listBoots(c *gin.Context) {
	bs, err := s.cfg.Ops.ListBoots(c.Request.Context(), principal(c), c.Param("project"))
	reply(s, c, mapList(bs, toBoot), err)
}

func (s *Server) showBoot(c *gin.Context) {
	b, err := s.cfg.Ops.ShowBoot(c.Request.Context(), principal(c), c.Param("project"), c.Param("node"))
	reply(s, c, toBoot(b), err)
}

func (s *Server) setBoot(c *gin.Context) {
	var req api.SetBootRequest
	if !body(s, c, &req) || !required(s, c, "disk", req.Disk, "nic", req.NIC) {
		return
	}
	b, err := s.cfg.Ops.SetBoot(c.Request.Context(), principal(c), c.Param("project"), c.Param("node"), req.NIC, req.Disk)
	reply(s, c, toBoot(b), err)
}

func (s *Server) clearBoot(c *gin.Context) {
	s.noContent(c, s.cfg.Ops.ClearBoot(c.Request.Context(), principal(c), c.Param("project"), c.Param("node")))
}

func (s *Server) provision(c *gin.Context) {
	var req api.ProvisionRequest
	if !body(s, c, &req) || !required(s, c, "image", req.Image, "nic", req.NIC) {
		return
	}
	who, project, node := principal(c), c.Param("project"), c.Param("node")
	if req.Network != "" {
		if err := s.cfg.Ops.CheckNetwork(c.Request.Context(), who, project, req.Network); err != nil {
			s.fail(c, err)
			return
		}
	}
	s.long(c, "provision", http.StatusCreated, func(ctx context.Context) (any, error) {
		d, err := s.cfg.Ops.Provision(ctx, who, project, node, req.Image, req.NIC)
		return s.disk(d), err
	})
}

func (s *Server) deprovision(c *gin.Context) {
	nic := c.Query("nic")
	if nic != "" {
		if err := core.ValidateNode("NIC name", nic); err != nil {
			s.fail(c, err)
			return
		}
	}
	if network := c.Query("network"); network != "" {
		if err := s.cfg.Ops.CheckNetwork(c.Request.Context(), principal(c), c.Param("project"), network); err != nil {
			s.fail(c, err)
			return
		}
	}
	s.noContent(c, s.cfg.Ops.Deprovision(c.Request.Context(), principal(c), c.Param("project"), c.Param("node"), nic))
}

func (s *Server) nodeIP(c *gin.Context) {
	nic := c.Query("nic")
	if nic == "" {
		s.fail(c, fault.Errorf(fault.Invalid, "query parameter \"nic\" is required"))
		return
	}
	ip, err := s.cfg.Ops.NodeIP(c.Request.Context(), principal(c), c.Param("project"), c.Param("node"), nic)
	reply(s, c, api.NodeIP{Node: c.Param("node"), NIC: nic, IP: ip}, err)
}

func (s *Server) listOps(c *gin.Context) {
	st := core.OpState(c.Query("state"))
	switch st {
	case "", core.OpRunning, core.OpDone, core.OpFailed, core.OpRolledBack:
	default:
		s.fail(c, fault.Errorf(fault.Invalid, "state must be running, done, failed or rolled_back, not %q", st))
		return
	}
	limit := 50
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			s.fail(c, fault.Errorf(fault.Invalid, "limit must be a number from 1 to 1000, not %q", v))
			return
		}
		limit = n
	}
	ops, err := s.cfg.Ops.Ops(c.Request.Context(), principal(c), st, limit)
	reply(s, c, mapList(ops, toOp), err)
}

func (s *Server) showOp(c *gin.Context) {
	op, err := s.cfg.Ops.Op(c.Request.Context(), principal(c), c.Param("id"))
	reply(s, c, toOp(op), err)
}

func (s *Server) dbList(c *gin.Context) {
	f := core.ImageFilter{Project: c.Query("project"), Name: c.Query("name"), CephName: c.Query("ceph"), Kind: core.Kind(c.Query("kind"))}
	switch f.Kind {
	case "", core.KindImage, core.KindSnapshot, core.KindDisk:
	default:
		s.fail(c, fault.Errorf(fault.Invalid, "kind must be image, snapshot or disk, not %q", f.Kind))
		return
	}
	if c.Query("public") != "" {
		p, err := boolQuery(c, "public")
		if err != nil {
			s.fail(c, err)
			return
		}
		f.Public = &p
	}
	ims, err := s.cfg.Ops.DBList(c.Request.Context(), principal(c), f)
	reply(s, c, mapList(ims, toImage), err)
}

func (s *Server) reconcile(c *gin.Context) {
	req := api.ReconcileRequest{}
	if c.Request.ContentLength != 0 && !body(s, c, &req) {
		return
	}
	r, err := s.cfg.Ops.Reconcile(c.Request.Context(), principal(c), req.Fix)
	reply(s, c, toReport(r), err)
}
