package apiserver

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
)

// countingAuth accepts one password and counts its calls.
type countingAuth struct{ calls atomic.Int32 }

func (a *countingAuth) Authenticate(_ context.Context, who core.Principal) error {
	a.calls.Add(1)
	if who.Password.Reveal() != "right" {
		return fault.Errorf(fault.Unauthenticated, "authentication failed for %q", who.User)
	}
	return nil
}

// projectsOps answers ListProjects without a core.
type projectsOps struct{ noOps }

func (projectsOps) ListProjects(context.Context, core.Principal) ([]core.Project, error) {
	return []core.Project{{ID: 1, Name: "p"}}, nil
}

// TestAuthCache: accepted credentials are checked once per TTL; refused
// ones every time, and they never reach the operations.
func TestAuthCache(t *testing.T) {
	auth := &countingAuth{}
	var logs bytes.Buffer
	s, err := New(Config{Ops: projectsOps{}, Auth: auth, AuthCacheTTL: time.Hour, Log: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	get := func(pw string) int {
		req := httptest.NewRequest("GET", "/api/v1/projects", nil)
		req.SetBasicAuth("u", pw)
		req.Header.Set("X-Request-ID", "req-42")
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	for i := 0; i < 3; i++ {
		if c := get("right"); c != 200 {
			t.Fatalf("right password: %d", c)
		}
	}
	if n := auth.calls.Load(); n != 1 {
		t.Fatalf("%d authentications for 3 requests, want 1", n)
	}
	for i := 0; i < 2; i++ {
		if c := get("wrong"); c != 401 {
			t.Fatalf("wrong password: %d", c)
		}
	}
	if n := auth.calls.Load(); n != 3 {
		t.Fatalf("%d authentications, want 3", n)
	}
	if !strings.Contains(logs.String(), `"request_id":"req-42"`) || strings.Contains(logs.String(), "right") {
		t.Fatalf("request log lacks the request id or leaks the password: %s", logs.String())
	}
}

// TestServeTLS serves HTTPS when a certificate is configured.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	s, err := New(Config{Ops: noOps{}, Log: slog.New(slog.DiscardHandler), TLSCert: cert, TLSKey: key})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeListener(ctx, ln) }()
	defer func() { cancel(); <-done }()
	pem, _ := os.ReadFile(cert)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	res, err := hc.Get("https://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.TLS == nil {
		t.Fatalf("https healthz: %d", res.StatusCode)
	}
}

func selfSigned(t *testing.T, dir string) (string, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bmid"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return cert, key
}
