package hilmock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"time"
)

// ConsoleDriver opens a node's serial console: a stream of its output
// that ends when ctx does.
type ConsoleDriver interface {
	OpenConsole(ctx context.Context, node Node) (io.ReadCloser, error)
}

// FileConsoles is a ConsoleDriver over serial console log files (the
// lab's): like a serial port, the stream is what is written to the file
// from the moment it is opened (polled every 200 ms); a file that does not
// exist yet is streamed from its start once it does.
type FileConsoles struct {
	// Path names the log file of a node.
	Path func(node Node) string
}

// OpenConsole implements ConsoleDriver. A node whose log does not exist
// yet (never powered on) has an empty console that fills once it does.
func (f FileConsoles) OpenConsole(ctx context.Context, node Node) (io.ReadCloser, error) {
	p := f.Path(node)
	if p == "" {
		return nil, fmt.Errorf("node %s has no serial console", node.Name)
	}
	r := &followFile{ctx: ctx, path: p}
	if f, err := os.Open(p); err == nil {
		if _, err := f.Seek(0, io.SeekEnd); err != nil {
			f.Close()
			return nil, err
		}
		r.f = f
	}
	return r, nil
}

// followFile reads a growing file until its context ends.
type followFile struct {
	ctx  context.Context
	path string
	f    *os.File
}

func (r *followFile) Read(p []byte) (int, error) {
	for {
		if r.f == nil {
			f, err := os.Open(r.path)
			switch {
			case err == nil:
				r.f = f
			case !errors.Is(err, fs.ErrNotExist):
				return 0, err
			}
		}
		if r.f != nil {
			n, err := r.f.Read(p)
			if n > 0 || (err != nil && err != io.EOF) {
				return n, err
			}
		}
		select {
		case <-r.ctx.Done():
			return 0, io.EOF
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (r *followFile) Close() error {
	if r.f != nil {
		return r.f.Close()
	}
	return nil
}

// showConsole is GET /v0/node/<n>/console (HIL's show_console): the
// node's serial console output as a byte stream, until the client goes
// away. Real HIL redirects to its OBM daemon, which streams; hil-mock
// streams itself. Needs access to the node's project (or admin); a
// hil-mock without a console driver answers 409 BlockedError, as HIL does
// for a node whose OBM is not enabled.
func (s *Server) showConsole(w http.ResponseWriter, r *http.Request) {
	args, err := decodeArgs(r, []string{"node"}, schema{})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	who, err := s.authenticate(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	c := &call{r: r, who: who, args: args}
	n, err := s.powerNode(r.Context(), c)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.consoles == nil {
		s.writeError(w, r, errorf(TypeBlocked, "OBM is not enabled"))
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.streams, cancel)()
	rc, err := s.consoles.OpenConsole(ctx, n)
	if err != nil {
		s.writeError(w, r, obmError(err))
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	if fl != nil {
		fl.Flush() // the client has its answer before the node writes anything
	}
	buf := make([]byte, 32<<10)
	for {
		k, err := rc.Read(buf)
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}
