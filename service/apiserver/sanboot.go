package apiserver

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
)

// portal is the iSCSI portal disks are reached at.
type portal struct {
	host string
	port int
}

// parsePortal splits "host:port" (or a bare host: port 3260).
func parsePortal(s string) (portal, error) {
	if s == "" {
		return portal{}, nil
	}
	host, ps, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Contains(err.Error(), "missing port") {
			return portal{host: strings.Trim(s, "[]"), port: 3260}, nil
		}
		return portal{}, fault.Errorf(fault.Invalid, "apiserver: portal %q: %v", s, err)
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 1 || port > 65535 || host == "" {
		return portal{}, fault.Errorf(fault.Invalid, "apiserver: portal %q: want host:port", s)
	}
	return portal{host: host, port: port}, nil
}

// sanbootLUN is the LUN every disk is: LUN 0 of its own target.
const sanbootLUN = 0

// disk is toDisk with where an initiator reaches the disk's target.
func (s *Server) disk(d core.DiskInfo) api.Disk {
	out := toDisk(d)
	if out.Target != nil && s.portal.host != "" {
		out.Target.Portal, out.Target.Port, out.Target.LUN = s.portal.host, s.portal.port, sanbootLUN
	}
	return out
}

// SanbootURI is iPXE's iSCSI URI for a target:
// iscsi:<server>:<protocol>:<port>:<lun>:<iqn>, the protocol left empty
// (TCP) and an IPv6 server in brackets.
func SanbootURI(host string, port, lun int, iqn string) string {
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return fmt.Sprintf("iscsi:%s::%d:%d:%s", host, port, lun, iqn)
}

// sanboot answers what an external boot manager needs to write its own
// `sanboot` line for a disk: the URI, its parts, the CHAP user and the
// initiator names the disk's ACL lets in. The CHAP secret is not in it:
// administrators read it from the audited credentials route.
func (s *Server) sanboot(c *gin.Context) {
	project, name := c.Param("project"), c.Param("disk")
	if s.portal.host == "" {
		s.fail(c, fault.Errorf(fault.Unavailable, "this bmid has no iSCSI portal configured (iscsi.portal)"))
		return
	}
	ds, err := s.cfg.Ops.ListDisks(c.Request.Context(), principal(c), project)
	if err != nil {
		s.fail(c, err)
		return
	}
	for _, d := range ds {
		if d.Name != name {
			continue
		}
		if d.Target == nil {
			s.fail(c, fault.Errorf(fault.Conflict, "disk %q of project %q has no iSCSI target yet", name, project))
			return
		}
		t := d.Target
		initiators := t.Initiators
		if s.cfg.Security != nil {
			// The whole ACL: the names BMI adds for the nodes booting the
			// disk, then those added through the API.
			acl, err := s.cfg.Security.ACL(c.Request.Context(), principal(c), project, name)
			if err != nil {
				s.fail(c, err)
				return
			}
			initiators = append(append([]string{}, acl.Nodes...), acl.Initiators...)
		}
		c.JSON(http.StatusOK, api.Sanboot{URI: SanbootURI(s.portal.host, s.portal.port, sanbootLUN, t.IQN),
			Portal: s.portal.host, Port: s.portal.port, LUN: sanbootLUN, IQN: t.IQN, CHAPUser: t.CHAPUser,
			Initiators: list(initiators)})
		return
	}
	s.fail(c, fault.Errorf(fault.NotFound, "disk %q in project %q not found", name, project))
}
