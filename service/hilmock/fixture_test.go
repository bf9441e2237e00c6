package hilmock

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/logging"
)

func TestMain(m *testing.M) {
	hashIterations = 1000 // fast tests; stored hashes carry their own count
	os.Exit(m.Run())
}

const exampleInventory = "../../configs/hil-mock.example.yaml"

// testSwitch is a SwitchDriver for tests: it records through a Recorder,
// can hold every call until released, and fails connects to failVLAN.
type testSwitch struct {
	Recorder
	mu       sync.Mutex
	gate     chan struct{}
	failVLAN int
	delay    time.Duration
}

func (s *testSwitch) hold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gate = make(chan struct{})
}

func (s *testSwitch) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gate != nil {
		close(s.gate)
		s.gate = nil
	}
}

func (s *testSwitch) wait(ctx context.Context) error {
	s.mu.Lock()
	gate, delay := s.gate, s.delay
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (s *testSwitch) Connect(ctx context.Context, nic NIC, vlan int, channel string) error {
	if err := s.wait(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	fail := s.failVLAN
	s.mu.Unlock()
	if vlan == fail {
		return errors.New("switch refused vlan " + channel)
	}
	return s.Recorder.Connect(ctx, nic, vlan, channel)
}

func (s *testSwitch) Detach(ctx context.Context, nic NIC, vlan int) error {
	if err := s.wait(ctx); err != nil {
		return err
	}
	return s.Recorder.Detach(ctx, nic, vlan)
}

// fixture is a hil-mock serving the example inventory on loopback.
type fixture struct {
	t      *testing.T
	srv    *Server
	power  *Recorder
	sw     *testSwitch
	dbPath string
	cancel context.CancelFunc
	done   chan error
}

func startFixture(t *testing.T, dbPath string, seed bool) *fixture {
	t.Helper()
	if dbPath == "" {
		dbPath = filepath.Join(t.TempDir(), "hil.db")
	}
	f := &fixture{t: t, power: &Recorder{}, sw: &testSwitch{}, dbPath: dbPath, done: make(chan error, 1)}
	ctx := context.Background()
	srv, err := New(ctx, dbPath, Options{Power: f.power, Switch: f.sw, Logger: logging.Discard(), ShutdownTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	if seed {
		inv, err := ReadInventory(exampleInventory)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Seed(ctx, inv); err != nil {
			t.Fatal(err)
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	f.cancel = cancel
	go func() { f.done <- srv.Serve(sctx) }()
	t.Cleanup(f.stop)
	return f
}

// stop shuts the server down and closes its database (idempotent).
func (f *fixture) stop() {
	if f.cancel == nil {
		return
	}
	f.sw.release()
	f.cancel()
	if err := <-f.done; err != nil {
		f.t.Errorf("Serve: %v", err)
	}
	if err := f.srv.Close(); err != nil {
		f.t.Errorf("Close: %v", err)
	}
	f.cancel = nil
}

// creds are the test users: name → user, password.
var creds = map[string][2]string{
	"admin":   {"hiladmin", "admin-secret"},
	"alice":   {"alice", "alice-secret"},
	"bob":     {"bob", "bob-secret"},
	"bmi":     {"bmi", "bmi-secret"},
	"wrongpw": {"alice", "not-her-password"},
	"ghost":   {"ghost", "whatever"},
	"carol":   {"carol", "carol-secret"},
}

// call sends one request; body "" sends none.
func (f *fixture) call(who, method, path, body string) (int, []byte) {
	f.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.srv.URL()+path, r)
	if err != nil {
		f.t.Fatal(err)
	}
	if c, ok := creds[who]; ok {
		req.SetBasicAuth(c[0], c[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// waitAction polls the action until it leaves PENDING and returns it.
func (f *fixture) waitAction(id string) map[string]any {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		st, b := f.call("admin", "GET", "/v0/networking_action/"+id, "")
		var a map[string]any
		if st != 200 || json.Unmarshal(b, &a) != nil {
			f.t.Fatalf("networking_action %s: %d %s", id, st, b)
		}
		if a["status"] != StatusPending {
			return a
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("networking_action %s still PENDING", id)
		}
		time.Sleep(delay)
	}
}

func httptestRequest(method, path, body string) *http.Request {
	return httptest.NewRequest(method, path, strings.NewReader(body))
}
