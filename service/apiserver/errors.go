package apiserver

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/fault"
)

// statusOf is THE table from error kinds to HTTP status codes, used by the
// JSON API and the legacy endpoints alike. Internal errors get a generic
// message (the full error is logged with the request id).
func statusOf(err error) (int, fault.Kind, string) {
	k := fault.Of(err)
	switch k {
	case fault.NotFound:
		return http.StatusNotFound, k, err.Error()
	case fault.Exists:
		return http.StatusConflict, k, err.Error()
	case fault.Conflict:
		return http.StatusConflict, k, err.Error()
	case fault.Forbidden:
		return http.StatusForbidden, k, err.Error()
	case fault.Unauthenticated:
		return http.StatusUnauthorized, k, err.Error()
	case fault.Invalid:
		return http.StatusBadRequest, k, err.Error()
	case fault.Unavailable:
		return http.StatusServiceUnavailable, k, err.Error()
	default:
		return http.StatusInternalServerError, fault.Internal, "internal error"
	}
}

// fail answers a JSON API request with the error body of err.
func (s *Server) fail(c *gin.Context, err error) {
	status, kind, msg := statusOf(err)
	rid := requestID(c)
	s.logFailure(c, status, err)
	closeIfBody(c)
	if status == http.StatusUnauthorized {
		s.authFailed(c)
		c.Header("WWW-Authenticate", `Basic realm="bmi"`)
	}
	if kind == fault.Internal {
		msg += " (request " + rid + ")"
	}
	c.AbortWithStatusJSON(status, api.ErrorBody{Error: api.ErrorDetail{Kind: string(kind), Message: msg, RequestID: rid}})
}

// failText answers a legacy request with the error's message as the body
// and the original's status code for it (legacyStatus), as the original
// did (Flask's default content type).
func (s *Server) failText(c *gin.Context, err error) {
	ours, kind, msg := statusOf(err)
	status := legacyStatus(err)
	s.logFailure(c, status, err)
	closeIfBody(c)
	if ours == http.StatusUnauthorized { // not a refusal the legacy answer also calls 401
		s.authFailed(c)
	}
	if kind == fault.Internal {
		msg += " (request " + requestID(c) + ")"
	}
	c.Header("Content-Type", legacyContentType)
	c.AbortWithStatus(status)
	_, _ = c.Writer.WriteString(msg)
}

func (s *Server) logFailure(c *gin.Context, status int, err error) {
	if status >= 500 {
		s.log.Error("request failed", "request_id", requestID(c), "method", c.Request.Method, "path", c.Request.URL.Path, "status", status, "err", err)
	} else {
		s.log.Debug("request refused", "request_id", requestID(c), "status", status, "err", err)
	}
}

// closeIfBody closes the connection after an error answer to a request
// with a body: the server would otherwise wait for (and drain) a body the
// handler may not have read, from a client that may never send it.
func closeIfBody(c *gin.Context) {
	if c.Request.ContentLength != 0 {
		c.Header("Connection", "close")
	}
}
