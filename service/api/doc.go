// Package api holds the wire types of bmid's JSON API (/api/v1): the
// request and response bodies and the error body, shared by the server
// (service/apiserver) and the Go client (service/client). It depends on
// nothing but the standard library and service/fault, so the CLI builds
// without cgo.
package api
