package loadtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// maxBaselineBody matches the real server's body limit so that the baseline
// refuses the same requests and buffers no more than it would.
const maxBaselineBody = 1 << 20

// BaselineHandler returns a bare JSON API handler: it decodes a POSTed body
// into a generic value and encodes it back. It does the work every JSON
// endpoint does (read, parse, allocate, serialise, write) and nothing else,
// so its throughput is the ceiling for a JSON API on this machine.
func BaselineHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			baselineError(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBaselineBody))
		var v any
		if err := dec.Decode(&v); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				baselineError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", mbe.Limit))
				return
			}
			baselineError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
			return
		}
		// Exactly one value, as a real API would insist.
		if _, err := dec.Token(); err != io.EOF {
			baselineError(w, http.StatusBadRequest, "invalid JSON body: more than one JSON value")
			return
		}
		// Streamed straight to the client, as the real server's writeJSON
		// does. A value that decoded from JSON always encodes, so there is no
		// error path worth a status code.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(v)
	})
}

// baselineError writes a small JSON error body, as an API would.
func baselineError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
