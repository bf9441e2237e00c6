package apiserver

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/bmi-go/bmi/service/fault"
)

// The original's Picasso was a Flask application: every body it wrote
// itself ("Success", json.dumps of a result, an error message) went out
// as Flask's default text/html; charset=utf-8, and the errors Flask made
// itself (a missing form field, an unknown path, a wrong method) were
// Werkzeug's HTML pages. These are rendered as Werkzeug 0.15–1.0 (the
// last releases for the original's Python 2.7) rendered them.
const legacyContentType = "text/html; charset=utf-8"

// werkzeugDescriptions are the descriptions of the Werkzeug errors the
// legacy routes answer with.
var werkzeugDescriptions = map[int]string{
	http.StatusBadRequest:       "The browser (or proxy) sent a request that this server could not understand.",
	http.StatusNotFound:         "The requested URL was not found on the server.  If you entered the URL manually please check your spelling and try again.",
	http.StatusMethodNotAllowed: "The method is not allowed for the requested URL.",
}

// werkzeugPage is Werkzeug's HTML error page for status.
func werkzeugPage(status int) string {
	return fmt.Sprintf("<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\n<title>%d %s</title>\n<h1>%s</h1>\n<p>%s</p>\n",
		status, http.StatusText(status), http.StatusText(status), werkzeugDescriptions[status])
}

// flaskError answers a legacy request with Werkzeug's page for status
// (err, when not nil, is logged, never shown: Flask showed none).
func (s *Server) flaskError(c *gin.Context, status int, err error) {
	if err != nil {
		s.logFailure(c, status, err)
	}
	closeIfBody(c)
	c.Header("Content-Type", legacyContentType)
	c.AbortWithStatus(status)
	_, _ = c.Writer.WriteString(werkzeugPage(status))
}

// legacyStatus is the original's status code for an error of ours
// (reference §4.2, §8.1): not found 404, HIL's refusals 401 (HIL answered
// 401 for a wrong password and for a project the user is not in alike),
// everything the original raised as a BMIException of its own (image
// exists, busy, has clones, iSCSI and Ceph failures) 500. Bad names are
// refused up front with 400, where the original failed later with 500.
func legacyStatus(err error) int {
	switch fault.Of(err) {
	case fault.NotFound:
		return http.StatusNotFound
	case fault.Unauthenticated, fault.Forbidden:
		return http.StatusUnauthorized
	case fault.Invalid:
		return http.StatusBadRequest
	default:
		return http.StatusInternalServerError
	}
}

// legacyAllow is the Allow header Flask sent with a 405 for path: the
// route's method and the OPTIONS Flask adds to every route.
func legacyAllow(path string) string {
	if m, ok := legacyMethods[path]; ok {
		return "OPTIONS, " + m
	}
	return ""
}

// legacyMethods is each legacy route's one method.
var legacyMethods = map[string]string{
	"/list_images/": http.MethodPost, "/provision/": http.MethodPut, "/deprovision/": http.MethodDelete,
	"/create_snapshot/": http.MethodPut, "/list_snapshots/": http.MethodPost, "/remove_image/": http.MethodDelete,
	"/create_disk": http.MethodPut, "/delete_disk": http.MethodDelete,
}

// legacyOptions answers OPTIONS as Flask did: 200, an empty body and the
// route's methods in Allow.
func legacyOptions(c *gin.Context) {
	c.Header("Allow", legacyAllow(c.FullPath()))
	c.Header("Content-Type", legacyContentType)
	c.Status(http.StatusOK)
}

// errNotPyJSON is pyDumps' answer to a value it cannot write.
var errNotPyJSON = errors.New("pyDumps: unsupported type")

// pyDumps writes v as Python's json.dumps with its defaults wrote it:
// ", " between items, ": " after keys, and every character outside ASCII
// escaped as \uXXXX (surrogate pairs above U+FFFF). It takes the shapes
// the legacy routes answer: a string, a list of strings, a list of pairs.
func pyDumps(v any) ([]byte, error) {
	var b strings.Builder
	switch x := v.(type) {
	case string:
		pyString(&b, x)
	case []string:
		b.WriteByte('[')
		for i, s := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			pyString(&b, s)
		}
		b.WriteByte(']')
	case [][2]string:
		b.WriteByte('[')
		for i, p := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('[')
			pyString(&b, p[0])
			b.WriteString(", ")
			pyString(&b, p[1])
			b.WriteByte(']')
		}
		b.WriteByte(']')
	default:
		return nil, fmt.Errorf("%w %T", errNotPyJSON, v)
	}
	return []byte(b.String()), nil
}

// pyString writes s as json.dumps (ensure_ascii) wrote a str.
func pyString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r < 0x20 || (r >= 0x7f && r <= 0xffff):
			fmt.Fprintf(b, `\u%04x`, r)
		case r > 0xffff:
			r -= 0x10000
			fmt.Fprintf(b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}
