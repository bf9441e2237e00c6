package apiserver_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/service/apiserver/apitest"
)

func newEnv(t testing.TB, seed bool) *apitest.Env {
	t.Helper()
	e, err := apitest.New(t.TempDir(), seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

var users = map[string][2]string{
	"admin": {apitest.AdminUser, apitest.AdminPassword},
	"alice": {apitest.AliceUser, apitest.AlicePassword},
	"bob":   {apitest.BobUser, apitest.BobPassword},
	"wrong": {apitest.AliceUser, "nope"},
}

type resp struct {
	status int
	header http.Header
	body   string
}

// call sends one request; user "" sends no credentials. A body starting
// with "form:" is sent form-encoded (and legacy auth is used).
func call(t testing.TB, e *apitest.Env, method, path, user, body string) resp {
	t.Helper()
	var r io.Reader
	ct := ""
	if strings.HasPrefix(body, "form:") {
		r, ct = strings.NewReader(strings.TrimPrefix(body, "form:")), "application/x-www-form-urlencoded"
	} else if body != "" {
		r, ct = strings.NewReader(body), "application/json"
	}
	req, err := http.NewRequest(method, e.Server.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if u, ok := users[user]; ok {
		req.SetBasicAuth(u[0], u[1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, string(b)}
}

// errKind returns the kind of a JSON error body ("" if it is none).
func errKind(body string) string {
	var eb struct {
		Error struct{ Kind, Message string }
	}
	if json.Unmarshal([]byte(body), &eb) != nil {
		return ""
	}
	return eb.Error.Kind
}
