package hil_test

import (
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/hil"
	"github.com/bmi-go/bmi/service/hilmock"
	"github.com/bmi-go/bmi/service/logging"
)

// cheapHash is a hil-mock password hash with few iterations, so tests
// seed fast; the format is hil-mock's.
func cheapHash(t testing.TB, password string) string {
	t.Helper()
	salt := make([]byte, 16)
	rand.Read(salt)
	key, err := pbkdf2.Key(sha256.New, password, salt, 1000, 32)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawStdEncoding
	return fmt.Sprintf("pbkdf2-sha256$1000$%s$%s", enc.EncodeToString(salt), enc.EncodeToString(key))
}

// mock is a hil-mock serving the example inventory on loopback.
type mock struct {
	srv   *hilmock.Server
	power *hilmock.Recorder
	sw    hilmock.SwitchDriver
}

func startMock(t testing.TB, sw hilmock.SwitchDriver) *mock {
	t.Helper()
	return startMockConsoles(t, sw, nil)
}

// startMockConsoles is startMock with a console driver.
func startMockConsoles(t testing.TB, sw hilmock.SwitchDriver, consoles hilmock.ConsoleDriver) *mock {
	t.Helper()
	inv, err := hilmock.ReadInventory("../../configs/hil-mock.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i := range inv.Users {
		inv.Users[i].PasswordHash, inv.Users[i].Password = cheapHash(t, inv.Users[i].Password), ""
	}
	m := &mock{power: &hilmock.Recorder{}, sw: sw}
	if m.sw == nil {
		m.sw = m.power
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.srv, err = hilmock.New(ctx, filepath.Join(t.TempDir(), "hil.db"),
		hilmock.Options{Power: m.power, Switch: m.sw, Consoles: consoles, Logger: logging.Discard(), ShutdownTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.srv.Seed(ctx, inv); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		m.srv.Close()
	})
	return m
}

var (
	admin   = hil.Credentials{User: "hiladmin", Password: "admin-secret"}
	alice   = hil.Credentials{User: "alice", Password: "alice-secret"}
	bob     = hil.Credentials{User: "bob", Password: "bob-secret"}
	wrongpw = hil.Credentials{User: "alice", Password: "wrong"}
)

// gate is a SwitchDriver whose calls wait until released (or their
// context ends), and that fails connects to failVLAN.
type gate struct {
	hilmock.Recorder
	open     chan struct{}
	failVLAN int
}

func newGate() *gate { return &gate{open: make(chan struct{})} }

func (g *gate) Connect(ctx context.Context, nic hilmock.NIC, vlan int, ch string) error {
	select {
	case <-g.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	if vlan == g.failVLAN {
		return fmt.Errorf("port %s refused vlan %d", nic.Port, vlan)
	}
	return g.Recorder.Connect(ctx, nic, vlan, ch)
}

func (g *gate) Detach(ctx context.Context, nic hilmock.NIC, vlan int) error {
	select {
	case <-g.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Recorder.Detach(ctx, nic, vlan)
}
