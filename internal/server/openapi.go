package server

import (
	_ "embed"
	"net/http"
	"strconv"
)

// openAPIDoc is the OpenAPI 3.1 document of every route in routes.go. The
// tests in openapi_test.go check real requests and responses against it, so
// a change of shape must change the document too.
//
//go:embed openapi.json
var openAPIDoc []byte

// handleOpenAPI serves the OpenAPI document (GET /openapi.json).
func (s *Server) handleOpenAPI() http.Handler {
	length := strconv.Itoa(len(openAPIDoc))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", length)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(openAPIDoc)
	})
}
