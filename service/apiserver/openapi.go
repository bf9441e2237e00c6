package apiserver

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"

	"github.com/getkin/kin-openapi/openapi3"
)

// openapiYAML is the OpenAPI 3 document of every route New registers
// (except handlers mounted with Mount).
//
//go:embed openapi.yaml
var openapiYAML []byte

// loadSpec parses and validates the embedded document.
func loadSpec() (*openapi3.T, error) {
	doc, err := openapi3.NewLoader().LoadFromData(openapiYAML)
	if err != nil {
		return nil, fmt.Errorf("apiserver: openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("apiserver: openapi.yaml is invalid: %w", err)
	}
	return doc, nil
}

// specJSON is the document as served at /api/v1/openapi.json.
func specJSON() ([]byte, error) {
	doc, err := loadSpec()
	if err != nil {
		return nil, err
	}
	return json.Marshal(doc)
}
