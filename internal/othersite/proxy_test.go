package othersite

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"sort"
	"sync"
	"testing"

	"github.com/bmi-go/bmi/internal/netnstest"
)

// cephAddrs returns every loopback address the Ceph cluster of conf
// advertises (monitors, OSDs, the active manager): what a client is told
// to connect to.
func cephAddrs(conf string) ([]string, error) {
	seen := map[string]bool{}
	for _, what := range [][]string{{"mon", "dump"}, {"osd", "dump"}, {"mgr", "dump"}} {
		out, err := exec.Command("ceph", append([]string{"--conf", conf, "--format", "json"}, what...)...).Output()
		if err != nil {
			return nil, fmt.Errorf("ceph %v: %w", what, err)
		}
		var v any
		if err := json.Unmarshal(out, &v); err != nil {
			return nil, fmt.Errorf("ceph %v: %w", what, err)
		}
		collectAddrs(v, seen)
	}
	var addrs []string
	for a := range seen {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	if len(addrs) == 0 {
		return nil, errors.New("the cluster advertises no loopback address")
	}
	return addrs, nil
}

// collectAddrs adds every "addr" value under v that is a loopback
// address with a port.
func collectAddrs(v any, seen map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "addr" {
				if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().IsLoopback() && ap.Port() != 0 {
					seen[s] = true
				}
				continue
			}
			collectAddrs(e, seen)
		}
	case []any:
		for _, e := range x {
			collectAddrs(e, seen)
		}
	}
}

// storageLink makes the test Ceph reachable from inside the namespace ns
// at the addresses it advertises: for each, a listener on the namespace's
// loopback whose connections are relayed to the same address on the
// host's. It is the emulated storage network between a site's gateway
// (bmid, in the namespace) and its Ceph cluster (the test cluster, on the
// host's loopback). Stopped when the test ends.
func storageLink(t *testing.T, ns, conf string) {
	t.Helper()
	addrs, err := cephAddrs(conf)
	if err != nil {
		t.Fatal(err)
	}
	var lns []net.Listener
	err = netnstest.NS{Name: ns}.Do(func() error {
		for _, a := range addrs {
			ln, err := net.Listen("tcp", a)
			if err != nil {
				return err
			}
			lns = append(lns, ln)
		}
		return nil
	})
	if err != nil {
		for _, ln := range lns {
			ln.Close()
		}
		t.Fatalf("storage link into %s: %v", ns, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	track := func(c net.Conn, add bool) {
		mu.Lock()
		defer mu.Unlock()
		if add {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	for _, ln := range lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				in, err := ln.Accept()
				if err != nil {
					return
				}
				// Dialled from an ordinary goroutine: the host's namespace.
				out, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					in.Close()
					continue
				}
				track(in, true)
				track(out, true)
				wg.Add(2)
				relay := func(dst, src net.Conn) {
					defer wg.Done()
					_, _ = io.Copy(dst, src)
					_ = dst.(*net.TCPConn).CloseWrite()
				}
				go relay(out, in)
				go relay(in, out)
			}
		}()
	}
	t.Logf("storage link: the test Ceph's %d addresses relayed into %s", len(addrs), ns)
	t.Cleanup(func() {
		for _, ln := range lns {
			ln.Close()
		}
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}
