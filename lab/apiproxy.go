package lab

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// APIProxy is how the host reaches a several-gateway lab's API: the
// gateways' APIs listen on the storage network, which the host cannot
// route to (the lab namespace forwards nothing), so a proxy in the lab
// namespace listens on the lab end of the host link and passes each
// connection to the first backend whose /readyz answered at its last
// check (twice a second, a second's timeout): a killed or paused gateway
// drops out within about a second, as keepalived moves the portal.
type APIProxy struct {
	// Listen is the address to listen on.
	Listen string
	// Backends are the APIs (host:port), in order of preference.
	Backends []string
	// Log hears backends going up and down; nil: discarded.
	Log *slog.Logger

	healthy []atomic.Bool
}

// Serve runs the proxy until ctx ends.
func (p *APIProxy) Serve(ctx context.Context) error {
	log := p.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p.healthy = make([]atomic.Bool, len(p.Backends))
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", p.Listen)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.check(ctx, log)
	}()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			wg.Wait()
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go p.pass(c)
	}
}

// check keeps healthy up to date.
func (p *APIProxy) check(ctx context.Context, log *slog.Logger) {
	hc := &http.Client{Timeout: time.Second}
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		for i, b := range p.Backends {
			ok := false
			if resp, err := hc.Get("http://" + b + "/readyz"); err == nil {
				ok = resp.StatusCode == http.StatusOK
				resp.Body.Close()
			}
			if p.healthy[i].Swap(ok) != ok {
				log.Info("api backend", "backend", b, "ready", ok)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pass connects c to the first healthy backend (the first that accepts,
// when none is known healthy yet) and copies both ways.
func (p *APIProxy) pass(c net.Conn) {
	defer c.Close()
	var up net.Conn
	for pass := 0; pass < 2 && up == nil; pass++ {
		for i, b := range p.Backends {
			if pass == 0 && !p.healthy[i].Load() {
				continue
			}
			if u, err := net.DialTimeout("tcp", b, time.Second); err == nil {
				up = u
				break
			}
		}
	}
	if up == nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(up, c)
	go cp(c, up)
	<-done
	<-done
}
