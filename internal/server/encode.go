// Package server is medserve's HTTP surface: the v1 API, the Open Inference
// Protocol (KServe V2), health and metrics. All routes are in routes.go.
package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"medserve/internal/gateway"
)

// maxBody is the body limit of one query (SPEC section 8).
const maxBody = 1 << 20

// writeJSON encodes v with status. Encoding errors after the header is
// written can only be logged by the caller's middleware; the status stands.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// Problem is an RFC 9457 problem detail, with the field problems listed.
type Problem struct {
	Type     string   `json:"type"`
	Title    string   `json:"title"`
	Status   int      `json:"status"`
	Detail   string   `json:"detail,omitempty"`
	Instance string   `json:"instance,omitempty"`
	Problems []string `json:"problems,omitempty"`
}

func writeProblem(w http.ResponseWriter, r *http.Request, status int, detail string, problems ...string) {
	p := Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail, Instance: r.URL.Path, Problems: problems}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(p)
}

// decode reads a JSON body into v: size-limited, unknown fields rejected,
// exactly one value. On failure it writes the problem and returns false.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	return decodeLimited(w, r, v, maxBody, maxJSONElements)
}

// JSON shape limits checked before decoding (SPEC section 8): deep nesting
// and huge arrays cost memory and time before any field is validated, and
// a duplicated key would let two parsers (a proxy, us) see different
// requests.
const (
	maxJSONDepth    = 32
	maxJSONElements = 10_000
)

// decodeLimited is decode with a body and element limit of the caller's.
func decodeLimited(w http.ResponseWriter, r *http.Request, v any, limit int64, maxElements int) bool {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeProblem(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", mbe.Limit))
			return false
		}
		writeProblem(w, r, http.StatusBadRequest, "could not read the body")
		return false
	}
	if err := gateway.CheckJSON(data, maxJSONDepth, maxElements); err != nil {
		writeProblem(w, r, http.StatusBadRequest, "invalid JSON body", "body: "+err.Error())
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeProblem(w, r, http.StatusBadRequest, "invalid JSON body", jsonProblem(err))
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		writeProblem(w, r, http.StatusBadRequest, "invalid JSON body", "body: more than one JSON value")
		return false
	}
	return true
}

// jsonProblem turns a decoding error into a "field: message" line.
func jsonProblem(err error) string {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		return fmt.Sprintf("%s: must be %s, not %s", ute.Field, ute.Type, ute.Value)
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return strings.Trim(f, `"`) + ": unknown field"
	}
	return "body: " + msg
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }
