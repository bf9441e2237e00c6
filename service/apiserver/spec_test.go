package apiserver_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

var (
	specOnce   sync.Once
	specRouter routers.Router
	specErr    error
)

// conform checks one exchange against openapi.yaml: the request must be
// one the document allows, and the answer (status, content type, body)
// one it documents.
func conform(t testing.TB, method, path, contentType, reqBody string, status int, header http.Header, body string) {
	t.Helper()
	specOnce.Do(func() {
		// The legacy routes answer text/html as Flask did.
		openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
		doc, err := openapi3.NewLoader().LoadFromFile("openapi.yaml")
		if err != nil {
			specErr = err
			return
		}
		doc.Servers = openapi3.Servers{{URL: "http://bmid"}}
		specRouter, specErr = gorillamux.NewRouter(doc)
	})
	if specErr != nil {
		t.Fatal(specErr)
	}
	req, _ := http.NewRequest(method, "http://bmid"+path, strings.NewReader(reqBody))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	route, params, err := specRouter.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s is not in openapi.yaml: %v", method, path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}}
	ctx := context.Background()
	if status < 400 {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			t.Fatalf("%s %s %s: request does not conform to openapi.yaml: %v", method, path, reqBody, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header,
		Body: io.NopCloser(bytes.NewReader([]byte(body))), Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Fatalf("%s %s: answer %d does not conform to openapi.yaml: %v\n%s", method, path, status, err, body)
	}
}
