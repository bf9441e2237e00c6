package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/bmi-go/bmi/service/fault"
)

// upload streams the request body into a new image (PUT .../data). The
// size comes from Content-Length, or from ?size= for a chunked body. The
// answer comes when the image is complete, with its operation id in the
// X-BMI-Operation header.
func (s *Server) upload(c *gin.Context) {
	size := c.Request.ContentLength
	if v := c.Query("size"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			s.fail(c, fault.Errorf(fault.Invalid, "size must be a positive number of bytes, not %q", v))
			return
		}
		if size >= 0 && size != n {
			s.fail(c, fault.Errorf(fault.Invalid, "size %d does not match Content-Length %d", n, size))
			return
		}
		size = n
	}
	if size <= 0 {
		s.fail(c, fault.Errorf(fault.Invalid, "upload needs its size: send Content-Length (or ?size= with a chunked body)"))
		return
	}
	who, project, name := principal(c), c.Param("project"), c.Param("image")
	body := &exactReader{r: c.Request.Body, left: size}
	s.runLong(c, "upload", http.StatusCreated, true, func(ctx context.Context) (any, error) {
		im, err := s.cfg.Ops.UploadImage(ctx, who, project, name, body, uint64(size))
		if err != nil && body.err != nil {
			err = fmt.Errorf("upload of %q: %w", name, body.err)
		}
		return toImage(im), err
	})
}

// exactReader reads exactly left bytes: a body that ends early is an
// invalid upload, not an image with a zero tail.
type exactReader struct {
	r    io.Reader
	left int64
	err  error
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		e.err = fault.Errorf(fault.Invalid, "body ended %d bytes before its announced size", e.left)
		return n, e.err
	}
	if err != nil && err != io.EOF {
		e.err = fault.Errorf(fault.Invalid, "reading body: %v", err)
		return n, e.err
	}
	return n, nil
}

// download streams an image, snapshot or disk (GET .../data) with its
// size in Content-Length. A failure after the first byte cuts the
// connection, so a client never mistakes a short body for the image.
func (s *Server) download(c *gin.Context) {
	who, project, name := principal(c), c.Param("project"), c.Param("image")
	im, err := s.cfg.Ops.ShowImage(c.Request.Context(), who, project, name)
	if err != nil {
		s.fail(c, err)
		return
	}
	w := &startWriter{c: c, size: im.Size, name: name}
	start := time.Now()
	_, err = s.cfg.Ops.DownloadImage(c.Request.Context(), who, project, name, w, nil)
	outcome := "ok"
	if err != nil {
		outcome = string(fault.Of(err))
	}
	s.metrics.op("download", outcome, time.Since(start))
	switch {
	case err != nil && !w.started:
		s.fail(c, err)
	case err != nil:
		s.log.Error("download failed mid-stream", "request_id", requestID(c), "project", project, "image", name, "err", err)
		panic(http.ErrAbortHandler)
	case !w.started:
		w.start()
	case w.n != int64(im.Size):
		s.log.Error("download size mismatch", "request_id", requestID(c), "want", im.Size, "sent", w.n)
		panic(http.ErrAbortHandler)
	}
}

// startWriter sends the headers on the first write.
type startWriter struct {
	c       *gin.Context
	size    uint64
	name    string
	started bool
	n       int64
}

func (w *startWriter) start() {
	w.started = true
	h := w.c.Writer.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatUint(w.size, 10))
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", w.name))
	w.c.Status(http.StatusOK)
	w.c.Writer.WriteHeaderNow()
}

func (w *startWriter) Write(p []byte) (int, error) {
	if !w.started {
		w.start()
	}
	n, err := w.c.Writer.Write(p)
	w.n += int64(n)
	if err != nil {
		return n, errors.Join(fault.ErrUnavailable, err)
	}
	return n, nil
}
