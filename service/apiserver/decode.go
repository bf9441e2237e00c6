package apiserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/bmi-go/bmi/service/fault"
)

// decodeJSON reads exactly one JSON object of type T from r: unknown
// fields, trailing data, a wrong content type and an oversized body are
// refused with fault.ErrInvalid.
func decodeJSON[T any](contentType string, r io.Reader, dst *T) error {
	if ct := strings.TrimSpace(strings.Split(contentType, ";")[0]); ct != "" && ct != "application/json" {
		return fault.Errorf(fault.Invalid, "request body must be application/json, not %q", ct)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fault.Errorf(fault.Invalid, "request body is larger than %d bytes", mbe.Limit)
		}
		return fault.Errorf(fault.Invalid, "reading request body: %v", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return fault.Errorf(fault.Invalid, "request body is empty: want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return fault.Errorf(fault.Invalid, "malformed JSON request body: %s", jsonMsg(err))
	}
	if dec.More() {
		return fault.Errorf(fault.Invalid, "malformed JSON request body: data after the object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return fault.Errorf(fault.Invalid, "malformed JSON request body: data after the object")
	}
	return emptyNames(b)
}

// nameFields are the body fields whose OpenAPI schema is Name (minLength
// 1): they may be left out, but not given empty.
var nameFields = []string{"name", "dest_project", "image", "disk"}

// emptyNames refuses a body that gives a name field as "" (which would
// otherwise read as "not given" and, e.g., make an import take the
// source's name).
func emptyNames(b []byte) error {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return nil // not an object; the typed decode has judged it
	}
	for _, f := range nameFields {
		if v, ok := m[f]; ok && string(bytes.TrimSpace(v)) == `""` {
			return fault.Errorf(fault.Invalid, "%s is empty: leave it out or give a name", f)
		}
	}
	return nil
}

func jsonMsg(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q must be %s, not %s", te.Field, te.Type, te.Value)
	default:
		return strings.TrimPrefix(err.Error(), "json: ")
	}
}
