package logging

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestFormats(t *testing.T) {
	tests := map[string]struct {
		format   string
		wantJSON bool
	}{
		"json":                {"json", true},
		"text":                {"text", false},
		"auto off a terminal": {"auto", true},
		"empty is auto":       {"", true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := New(&buf, Options{Format: tc.format})
			if err != nil {
				t.Fatal(err)
			}
			log.Info("hello", "node", "n1")
			isJSON := json.Valid(bytes.TrimSpace(buf.Bytes()))
			if isJSON != tc.wantJSON {
				t.Fatalf("format %q wrote %q; JSON = %v, want %v", tc.format, buf.String(), isJSON, tc.wantJSON)
			}
		})
	}
}

func TestBadOptions(t *testing.T) {
	if _, err := New(&bytes.Buffer{}, Options{Format: "xml"}); err == nil {
		t.Error("format xml accepted")
	}
	if _, err := New(&bytes.Buffer{}, Options{Level: "loud"}); err == nil {
		t.Error("level loud accepted")
	}
}

func TestSecretsNeverLogged(t *testing.T) {
	const pw = "hunter2"
	var buf bytes.Buffer
	log, err := New(&buf, Options{Format: "json", Level: "debug"})
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("login", "user", "alice", "password", pw, "creds", Secret(pw),
		"chap_secret", []byte(pw), "Authorization", "Basic "+pw)
	log.With("hil_token", pw).Info("call")
	out := buf.String()
	if strings.Contains(out, pw) {
		t.Fatalf("secret in log output: %s", out)
	}
	if !strings.Contains(out, "alice") {
		t.Fatalf("ordinary attributes lost: %s", out)
	}
	for _, s := range []string{fmt.Sprint(Secret(pw)), fmt.Sprintf("%v %s %#v", Secret(pw), Secret(pw), Secret(pw))} {
		if strings.Contains(s, pw) {
			t.Fatalf("formatted secret shows itself: %q", s)
		}
	}
	if Secret(pw).Reveal() != pw {
		t.Fatal("Reveal lost the value")
	}
}
