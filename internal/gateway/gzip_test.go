package gateway

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		header []string
		want   bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"gzip"}, true},
		{[]string{"GZIP"}, true},
		{[]string{"x-gzip"}, true},
		{[]string{"gzip, deflate, br"}, true},
		{[]string{"br", "gzip"}, true},
		{[]string{"deflate, br"}, false},
		{[]string{"identity"}, false},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip; q=0.000"}, false},
		{[]string{"gzip;q=0.5"}, true},
		{[]string{"gzip;q=1.0"}, true},
		{[]string{"gzip;Q=0.001"}, true},
		{[]string{"gzip;q=2"}, false},
		{[]string{"gzip;q=abc"}, false},
		{[]string{"gzip;q="}, false},
		{[]string{"*"}, true},
		{[]string{"*;q=0"}, false},
		{[]string{"gzip;q=0, *"}, false},
		{[]string{"*, gzip;q=0"}, false},
		{[]string{"*;q=0, gzip"}, true},
		{[]string{"gzip, x-gzip;q=0"}, false},
		{[]string{" , gzip ,"}, true},
	}
	for _, tt := range tests {
		if got := acceptsGzip(tt.header); got != tt.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tt.header, got, tt.want)
		}
	}
}

func TestGzip(t *testing.T) {
	big := strings.Repeat(`{"acuity":2,"urgency":"high"}`, 100) // 2,900 bytes
	small := `{"acuity":2}`
	tests := []struct {
		name        string
		method      string
		accept      string
		handler     http.HandlerFunc
		wantStatus  int
		wantGzip    bool
		wantBody    string
		wantType    string // Content-Type, "" to skip
		wantLength  string // Content-Length of the recorded header, "-" to skip
		wantETag    string
		wantNoVary  bool
		checkHeader func(t *testing.T, h http.Header)
	}{
		{
			name: "big, one write", accept: "gzip",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Content-Length", "2900")
				w.Header().Set("ETag", `"v1"`)
				_, _ = io.WriteString(w, big)
			},
			wantStatus: 200, wantGzip: true, wantBody: big, wantType: "application/json", wantLength: "", wantETag: `W/"v1"`,
		},
		{
			name: "big, many small writes crossing the threshold", accept: "gzip, br",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusCreated)
				for i := 0; i < 100; i++ {
					_, _ = io.WriteString(w, `{"acuity":2,"urgency":"high"}`)
				}
			},
			wantStatus: 201, wantGzip: true, wantBody: big, wantType: "application/json", wantLength: "-",
		},
		{
			name: "big, no content type: sniffed from the plain bytes", accept: "gzip",
			handler: func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, "<html>")
				_, _ = io.WriteString(w, big)
			},
			wantStatus: 200, wantGzip: true, wantBody: "<html>" + big, wantType: "text/html; charset=utf-8", wantLength: "-",
		},
		{
			name: "small stays plain", accept: "gzip",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Content-Length", "12")
				_, _ = io.WriteString(w, small)
			},
			wantStatus: 200, wantBody: small, wantType: "application/json", wantLength: "12",
		},
		{
			name: "exactly minSize is compressed", accept: "gzip",
			handler: func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, strings.Repeat("a", 1024))
			},
			wantStatus: 200, wantGzip: true, wantBody: strings.Repeat("a", 1024), wantLength: "-",
		},
		{
			name: "one below minSize is not", accept: "gzip",
			handler: func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, strings.Repeat("a", 1023))
			},
			wantStatus: 200, wantBody: strings.Repeat("a", 1023), wantLength: "-",
		},
		{
			name: "gzip refused with q=0", accept: "gzip;q=0, *",
			handler:    func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, big) },
			wantStatus: 200, wantBody: big, wantLength: "-",
		},
		{
			name: "no Accept-Encoding", accept: "",
			handler:    func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, big) },
			wantStatus: 200, wantBody: big, wantLength: "-",
		},
		{
			name: "already encoded", accept: "gzip",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Encoding", "br")
				_, _ = io.WriteString(w, big)
			},
			wantStatus: 200, wantBody: big, wantLength: "-",
			checkHeader: func(t *testing.T, h http.Header) {
				if got := h.Values("Content-Encoding"); len(got) != 1 || got[0] != "br" {
					t.Errorf("Content-Encoding = %q, want [br]", got)
				}
			},
		},
		{
			name: "encoding set after WriteHeader", accept: "gzip",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(200)
				w.Header().Set("Content-Encoding", "br")
				_, _ = io.WriteString(w, big)
			},
			wantStatus: 200, wantBody: big, wantLength: "-",
		},
		{
			name: "WriteHeader without body", accept: "gzip",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusAccepted)
			},
			wantStatus: 202, wantBody: "", wantLength: "-",
		},
		{
			name: "204", accept: "gzip",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusNoContent)
				_, _ = io.WriteString(w, big) // net/http refuses it; here: never compressed
			},
			wantStatus: 204, wantBody: "-", wantLength: "-",
		},
		{
			name: "304", accept: "gzip",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusNotModified)
			},
			wantStatus: 304, wantBody: "", wantLength: "-",
		},
		{
			name: "nothing at all", accept: "gzip",
			handler:    func(w http.ResponseWriter, r *http.Request) {},
			wantStatus: 200, wantBody: "", wantLength: "-",
		},
		{
			name: "superfluous WriteHeader ignored", accept: "gzip",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusTeapot)
				w.WriteHeader(http.StatusOK)
				_, _ = io.WriteString(w, big)
			},
			wantStatus: http.StatusTeapot, wantGzip: true, wantBody: big, wantLength: "-",
		},
		{
			name: "partial content untouched", accept: "gzip",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Range", "bytes 0-2899/5000")
				w.WriteHeader(http.StatusPartialContent)
				_, _ = io.WriteString(w, big)
			},
			wantStatus: 206, wantBody: big, wantLength: "-",
		},
		{
			name: "HEAD", method: "HEAD", accept: "gzip",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "2900")
				w.WriteHeader(200)
			},
			wantStatus: 200, wantBody: "", wantLength: "2900",
		},
		{
			name: "problem from an inner layer", accept: "gzip",
			handler: func(w http.ResponseWriter, r *http.Request) {
				writeProblem(w, r, http.StatusForbidden, "no")
			},
			wantStatus: 403, wantBody: "-", wantType: "application/problem+json", wantLength: "-",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			req := httptest.NewRequest(method, "/api/v1/x", nil)
			if tt.accept != "" {
				req.Header.Set("Accept-Encoding", tt.accept)
			}
			rec := httptest.NewRecorder()
			Gzip(1024)(tt.handler).ServeHTTP(rec, req)
			h := rec.Result().Header
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			isGzip := h.Get("Content-Encoding") == "gzip"
			if isGzip != tt.wantGzip {
				t.Errorf("Content-Encoding = %q, want gzip %v", h.Get("Content-Encoding"), tt.wantGzip)
			}
			body := rec.Body.Bytes()
			if isGzip {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			if tt.wantBody != "-" && string(body) != tt.wantBody {
				t.Errorf("body = %.40q… (%d bytes), want %.40q… (%d bytes)", body, len(body), tt.wantBody, len(tt.wantBody))
			}
			if tt.wantType != "" && h.Get("Content-Type") != tt.wantType {
				t.Errorf("Content-Type = %q, want %q", h.Get("Content-Type"), tt.wantType)
			}
			if tt.wantLength != "-" && h.Get("Content-Length") != tt.wantLength {
				t.Errorf("Content-Length = %q, want %q", h.Get("Content-Length"), tt.wantLength)
			}
			if isGzip && h.Get("Content-Length") != "" {
				t.Errorf("compressed answer kept Content-Length %q", h.Get("Content-Length"))
			}
			if tt.wantETag != "" && h.Get("Etag") != tt.wantETag {
				t.Errorf("ETag = %q, want %q", h.Get("Etag"), tt.wantETag)
			}
			if !strings.Contains(strings.Join(h.Values("Vary"), ","), "Accept-Encoding") {
				t.Errorf("Vary = %q, want Accept-Encoding", h.Values("Vary"))
			}
			if tt.checkHeader != nil {
				tt.checkHeader(t, h)
			}
		})
	}
}

// TestGzipServer runs the middleware behind a real server, where net/http
// enforces HEAD, 204 and Content-Length rules, and a real client.
func TestGzipServer(t *testing.T) {
	big := strings.Repeat("clinical data ", 400)
	mux := http.NewServeMux()
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, big)
	})
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "tiny") })
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "part one;")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("flush: %v", err)
		}
		_, _ = io.WriteString(w, "part two")
	})
	srv := httptest.NewServer(Gzip(1024)(mux))
	defer srv.Close()

	tests := []struct {
		method, path string
		wantStatus   int
		wantGzip     bool
		wantBody     string
	}{
		{"GET", "/big", 200, true, big},
		{"HEAD", "/big", 200, false, ""},
		{"GET", "/small", 200, false, "tiny"},
		{"GET", "/empty", 204, false, ""},
		{"GET", "/stream", 200, true, "part one;part two"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
		req.Header.Set("Accept-Encoding", "gzip") // set by hand: no transparent decoding
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body := raw
		gz := resp.Header.Get("Content-Encoding") == "gzip"
		if gz {
			zr, err := gzip.NewReader(bytes.NewReader(raw))
			if err != nil {
				t.Fatalf("%s %s: %v", tt.method, tt.path, err)
			}
			body, err = io.ReadAll(zr)
			if err != nil {
				t.Fatalf("%s %s: %v", tt.method, tt.path, err)
			}
		}
		if resp.StatusCode != tt.wantStatus || gz != tt.wantGzip || string(body) != tt.wantBody {
			t.Errorf("%s %s = %d gzip %v body %.30q; want %d gzip %v body %.30q", tt.method, tt.path, resp.StatusCode, gz, body, tt.wantStatus, tt.wantGzip, tt.wantBody)
		}
	}
}

// TestGzipPoolReuse checks pooled writers start clean: many answers in a row
// each decode to their own body.
func TestGzipPoolReuse(t *testing.T) {
	h := Gzip(16)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat(r.URL.Query().Get("s"), 50))
	}))
	for _, s := range []string{"a", "b", "c", "a", "d"} {
		req := httptest.NewRequest("GET", "/?s="+s, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		zr, err := gzip.NewReader(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		if err != nil || string(got) != strings.Repeat(s, 50) {
			t.Fatalf("s=%s: got %q, %v", s, got, err)
		}
	}
}
