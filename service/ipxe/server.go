package ipxe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server serves a Handler on its own HTTP listener, for bmid setups and
// tests that do not mount the handler into the API server.
type Server struct {
	// Addr is the TCP host:port to listen on.
	Addr string
	// Handler serves the requests (usually a *Handler).
	Handler http.Handler
	// Log receives start and stop lines.
	Log *slog.Logger
}

// Serve listens on Addr and serves until ctx is done, then shuts down,
// giving requests in flight 5 seconds, and returns nil.
func (s *Server) Serve(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("ipxe http server: listen on %s: %w", s.Addr, err)
	}
	return s.ServeListener(ctx, ln)
}

// ServeListener is Serve on a listener the caller opened (and that Serve
// closes).
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           s.Handler,
		ReadHeaderTimeout: 10 * time.Second, // slow clients must not hold connections forever
		WriteTimeout:      2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("ipxe http server listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("ipxe http server on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("ipxe http server on %s: %w", ln.Addr(), err)
	}
	log.Info("ipxe http server stopped", "addr", ln.Addr().String())
	return nil
}
