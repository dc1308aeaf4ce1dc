package loadtest

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// Vary returns n bodies cycling through bodies, each made unique by
// appending " #i" (i its index in the result) to the top-level "query" string
// field, or setting "query" to "#i" when it is absent or not a string, so
// that no response cache can answer a repeat. Bodies that are not JSON
// objects cannot be varied and are copied unchanged. Keys come out sorted;
// numbers keep their original text.
func Vary(bodies [][]byte, n int) [][]byte {
	if len(bodies) == 0 || n <= 0 {
		return nil
	}
	// Decode each source once; only the query differs between copies.
	objs := make([]map[string]any, len(bodies))
	for i, b := range bodies {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber() // keep "37.0" and large integers exactly as written
		var m map[string]any
		if dec.Decode(&m) == nil && m != nil {
			objs[i] = m
		}
	}
	out := make([][]byte, n)
	for i := range out {
		src := i % len(bodies)
		m := objs[src]
		if m == nil {
			out[i] = bytes.Clone(bodies[src])
			continue
		}
		q, _ := m["query"].(string)
		query := "#" + strconv.Itoa(i)
		if q = strings.TrimRight(q, " "); q != "" {
			query = q + " " + query
		}
		// A shallow copy suffices: only the top-level "query" is replaced.
		v := make(map[string]any, len(m)+1)
		for k, x := range m {
			v[k] = x
		}
		v["query"] = query
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // keep "<" and "&" in free text as written
		if err := enc.Encode(v); err != nil {
			out[i] = bytes.Clone(bodies[src])
			continue
		}
		out[i] = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	}
	return out
}
