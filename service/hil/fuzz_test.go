package hil

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/bmi-go/bmi/service/fault"
)

// FuzzAnswerError: any answer HIL (or a proxy in front of it) gives is
// classified into one fault kind, with a bounded, valid UTF-8 message.
func FuzzAnswerError(f *testing.F) {
	f.Add(404, []byte(`{"type":"NotFoundError","msg":"Node x does not exist."}`))
	f.Add(409, []byte(`{"type":"DuplicateError","msg":"x"}`))
	f.Add(500, []byte(`<html>oops</html>`))
	f.Add(502, []byte{})
	f.Add(400, []byte(`{"type":5}`))
	f.Add(401, []byte("\xff\xfe"))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 300 || status > 599 {
			status = 300 + (status%300+300)%300
		}
		e := answerError(`show node "x"`, status, body)
		if fault.Of(e) == "" || !errors.Is(e, fault.Sentinel(e.Kind)) {
			t.Fatalf("status %d body %q: kind %q", status, body, e.Kind)
		}
		if e.Type == "" && (len(e.Msg) > 203 || !utf8.ValidString(e.Msg) || e.Msg == "") {
			t.Fatalf("message %q", e.Msg)
		}
		if !strings.Contains(e.Error(), `show node "x"`) {
			t.Fatalf("error %q does not name the call", e.Error())
		}
	})
}
