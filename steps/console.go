package steps

import (
	"context"
	"os"
	"path/filepath"
	"sync"
)

// consoleWatch follows one node's serial console during a boot: through
// HIL's console API (GET /v0/node/<node>/console) when the site reads its
// consoles there, else from the node's log file in the site's consoles
// directory. Either way only what the node writes after the watch began.
type consoleWatch struct {
	// file
	path string
	from int64
	// HIL stream
	mu     sync.Mutex
	buf    []byte
	cancel context.CancelFunc
	done   chan struct{}
}

// watchConsole starts following n's console; close it when done.
func (w *World) watchConsole(ctx context.Context, n Node) (*consoleWatch, error) {
	if !w.site.HILConsoles {
		c := &consoleWatch{path: filepath.Join(w.site.Consoles, n.Name+".log")}
		if st, err := os.Stat(c.path); err == nil {
			c.from = st.Size()
		}
		return c, nil
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	rc, err := w.hil.Console(sctx, hilCred(w.site.Operator), n.Name)
	if err != nil {
		cancel()
		return nil, err
	}
	c := &consoleWatch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer rc.Close()
		b := make([]byte, 16<<10)
		for {
			k, err := rc.Read(b)
			c.mu.Lock()
			c.buf = append(c.buf, b[:k]...)
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return c, nil
}

// text is the console output since the watch began.
func (c *consoleWatch) text() string {
	if c.cancel == nil {
		b, err := os.ReadFile(c.path)
		if err != nil || int64(len(b)) < c.from {
			return ""
		}
		return string(b[c.from:])
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf)
}

// close ends a HIL stream.
func (c *consoleWatch) close() {
	if c.cancel != nil {
		c.cancel()
		<-c.done
	}
}
