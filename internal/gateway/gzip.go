package gateway

import (
	"compress/gzip"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Gzip returns middleware that compresses answers of at least minSize bytes
// (1024 is a good value: below it gzip's framing eats the gain) for clients
// whose Accept-Encoding allows gzip. It buffers up to minSize bytes to decide;
// smaller answers go out unchanged. It leaves alone answers that already
// carry a Content-Encoding, answers without a body (1xx, 204, 304, and
// WriteHeader with no Write), partial content (206), and HEAD requests. A
// compressed answer gets Content-Encoding: gzip, loses its Content-Length,
// and a strong ETag becomes weak; every answer gets Vary: Accept-Encoding.
// gzip writers are pooled per middleware instance and use level 1
// (BestSpeed, nginx's default gzip_comp_level): on medserve's JSON it is
// about three times faster than level 6 for 5% more bytes.
//
// A handler that calls Flush commits the answer to gzip at once (it is
// streaming; the total size is unknown) and its data is flushed through.
func Gzip(minSize int) func(http.Handler) http.Handler {
	if minSize < 0 {
		minSize = 0
	}
	pool := &sync.Pool{New: func() any {
		gz, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
		return gz
	}}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			addVary(w.Header(), "Accept-Encoding")
			if r.Method == http.MethodHead || !acceptsGzip(r.Header.Values("Accept-Encoding")) {
				next.ServeHTTP(w, r)
				return
			}
			gw := &gzipWriter{w: w, min: minSize, pool: pool}
			next.ServeHTTP(gw, r)
			gw.finish()
		})
	}
}

// gzipWriter holds back the status and the first min bytes, then either
// starts a gzip stream or passes everything through unchanged.
type gzipWriter struct {
	w       http.ResponseWriter
	min     int
	pool    *sync.Pool
	code    int    // the status held back; 0 until WriteHeader or Write
	buf     []byte // body held back while undecided
	decided bool
	gz      *gzip.Writer // non-nil once compressing
}

func (g *gzipWriter) Header() http.Header { return g.w.Header() }

// Unwrap lets http.ResponseController reach the connection (deadlines).
func (g *gzipWriter) Unwrap() http.ResponseWriter { return g.w }

func (g *gzipWriter) WriteHeader(code int) {
	if g.decided || g.code != 0 {
		return // superfluous: the first status stands
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		g.w.WriteHeader(code) // informational (103 Early Hints): not the answer
		return
	}
	g.code = code
	if !bodyAllowed(code) || code == http.StatusPartialContent || g.w.Header().Get("Content-Encoding") != "" {
		g.passThrough()
	}
}

func (g *gzipWriter) Write(p []byte) (int, error) {
	if !g.decided {
		if g.code == 0 {
			g.WriteHeader(http.StatusOK)
		}
		if !g.decided && g.w.Header().Get("Content-Encoding") != "" {
			g.passThrough() // set after WriteHeader; still never encode twice
		}
		if !g.decided {
			if len(g.buf)+len(p) < g.min {
				if g.buf == nil {
					g.buf = make([]byte, 0, g.min)
				}
				g.buf = append(g.buf, p...)
				return len(p), nil
			}
			if err := g.startGzip(p); err != nil {
				return 0, err
			}
		}
	}
	if g.gz != nil {
		return g.gz.Write(p)
	}
	return g.w.Write(p)
}

// Flush commits a still undecided answer to gzip and pushes out what has
// been written so far.
func (g *gzipWriter) Flush() {
	if !g.decided {
		if g.code == 0 {
			g.WriteHeader(http.StatusOK)
		}
		if !g.decided {
			if err := g.startGzip(nil); err != nil {
				return
			}
		}
	}
	if g.gz != nil {
		if err := g.gz.Flush(); err != nil {
			return
		}
	}
	_ = http.NewResponseController(g.w).Flush()
}

// passThrough sends the held-back status and bytes unchanged.
func (g *gzipWriter) passThrough() {
	g.decided = true
	if g.code != 0 {
		g.w.WriteHeader(g.code)
	}
	if len(g.buf) > 0 {
		_, _ = g.w.Write(g.buf)
	}
	g.buf = nil
}

// startGzip sends the headers of a compressed answer and starts the stream
// with the held-back bytes; next is the write that crossed the threshold,
// used only to sniff the content type.
func (g *gzipWriter) startGzip(next []byte) error {
	g.decided = true
	h := g.w.Header()
	if _, ok := h["Content-Type"]; !ok {
		// net/http would sniff the compressed bytes; sniff the plain ones.
		h.Set("Content-Type", http.DetectContentType(sniffPrefix(g.buf, next)))
	}
	h.Del("Content-Length")
	h.Set("Content-Encoding", "gzip")
	if et := h.Get("Etag"); strings.HasPrefix(et, `"`) {
		h.Set("Etag", "W/"+et) // the gzip bytes differ from the identity ones
	}
	g.w.WriteHeader(g.code)
	g.gz = g.pool.Get().(*gzip.Writer)
	g.gz.Reset(g.w)
	buf := g.buf
	g.buf = nil
	if len(buf) > 0 {
		if _, err := g.gz.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// finish ends the answer after the handler returned: it sends what is still
// held back, or closes the gzip stream and returns the writer to the pool.
func (g *gzipWriter) finish() {
	if !g.decided {
		g.passThrough()
	}
	if g.gz != nil {
		_ = g.gz.Close()
		g.gz.Reset(io.Discard)
		g.pool.Put(g.gz)
		g.gz = nil
	}
}

// sniffPrefix returns up to the 512 bytes http.DetectContentType reads, from
// a followed by b.
func sniffPrefix(a, b []byte) []byte {
	const n = 512
	if len(a) >= n || len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b
	}
	out := make([]byte, 0, n)
	out = append(out, a...)
	return append(out, b[:min(len(b), n-len(a))]...)
}

// bodyAllowed reports whether a status may carry a body (RFC 9110).
func bodyAllowed(code int) bool {
	return code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
}

// acceptsGzip reports whether the Accept-Encoding values allow gzip: named
// (gzip or x-gzip) with a non-zero q, or not named and covered by "*" with a
// non-zero q. An absent or empty header means identity only. A malformed q
// counts as 0, so a doubtful header gets the uncompressed answer.
func acceptsGzip(values []string) bool {
	named, namedOK, star, starOK := false, true, false, false
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(item, ";")
			coding = strings.TrimSpace(coding)
			if coding == "" {
				continue
			}
			ok := qualityAbove0(params)
			switch {
			case strings.EqualFold(coding, "gzip") || strings.EqualFold(coding, "x-gzip"):
				named = true
				namedOK = namedOK && ok
			case coding == "*":
				star, starOK = true, ok
			}
		}
	}
	if named {
		return namedOK
	}
	return star && starOK
}

// qualityAbove0 reads the q parameter of one Accept-Encoding item (q=1 when
// absent) and reports whether it is a valid qvalue above zero.
func qualityAbove0(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		name, val, found := strings.Cut(strings.TrimSpace(p), "=")
		if !found || !strings.EqualFold(strings.TrimSpace(name), "q") {
			continue
		}
		val = strings.TrimSpace(val)
		if len(val) == 0 || len(val) > 5 || (val[0] != '0' && val[0] != '1') {
			return false
		}
		q, err := strconv.ParseFloat(val, 64)
		return err == nil && q > 0 && q <= 1
	}
	return true
}
