package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"sync"
	"time"
)

// errAnswerSent is returned to writes made after the handler returned (by a
// goroutine it left behind).
var errAnswerSent = errors.New("gateway: write after the answer was sent")

// Timeout returns middleware that gives each request a deadline d later (an
// earlier deadline already in the context stands: deadlines are shortened,
// never lengthened). The handler runs in its own goroutine and writes into a
// buffer with its own header map; if it returns in time, its status, headers
// and body are copied out. If the deadline passes first the client gets 503
// problem+json "timed out", written once, and whatever the handler writes
// later is discarded (Write returns http.ErrHandlerTimeout). Like
// http.TimeoutHandler the writer supports neither Flush nor Hijack, so it
// suits request/response API routes, not streams. A panic in the handler is
// re-raised in the serving goroutine when it happens in time, and is
// swallowed after a timeout. d <= 0 means no deadline: next is returned as is.
func Timeout(d time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if d <= 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), d)
			defer cancel()
			h := w.Header().Clone()
			if h == nil {
				h = make(http.Header)
			}
			tw := &timeoutWriter{h: h}
			done := make(chan struct{})
			panicked := make(chan any, 1)
			go func() {
				defer func() {
					if p := recover(); p != nil {
						if p != http.ErrAbortHandler {
							p = fmt.Sprintf("%v\n\n%s", p, debug.Stack())
						}
						panicked <- p
					}
				}()
				next.ServeHTTP(tw, r.WithContext(ctx))
				close(done)
			}()
			select {
			case p := <-panicked:
				tw.mu.Lock()
				tw.ended = true
				tw.mu.Unlock()
				panic(p)
			case <-done:
				tw.mu.Lock()
				defer tw.mu.Unlock()
				tw.ended = true
				dst := w.Header()
				for k := range dst {
					if _, ok := tw.h[k]; !ok {
						delete(dst, k) // the handler removed it
					}
				}
				for k, vv := range tw.h {
					dst[k] = vv
				}
				if tw.code == 0 {
					tw.code = http.StatusOK
				}
				w.WriteHeader(tw.code)
				_, _ = w.Write(tw.buf.Bytes())
			case <-ctx.Done():
				tw.mu.Lock()
				defer tw.mu.Unlock()
				tw.ended, tw.timedOut = true, true
				detail := "timed out"
				if errors.Is(ctx.Err(), context.Canceled) {
					detail = "request canceled"
				}
				writeProblem(w, r, http.StatusServiceUnavailable, detail)
			}
		})
	}
}

// timeoutWriter is the handler's side of Timeout: a header map of its own, a
// status and a body buffer, all behind mu.
type timeoutWriter struct {
	h        http.Header // touched only by the handler until ended
	mu       sync.Mutex
	buf      bytes.Buffer
	code     int
	ended    bool // the answer was sent (by the handler or as a timeout)
	timedOut bool
}

func (tw *timeoutWriter) Header() http.Header { return tw.h }

func (tw *timeoutWriter) Write(p []byte) (int, error) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.timedOut {
		return 0, http.ErrHandlerTimeout
	}
	if tw.ended {
		return 0, errAnswerSent
	}
	if tw.code == 0 {
		tw.code = http.StatusOK
	}
	return tw.buf.Write(p)
}

func (tw *timeoutWriter) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code)) // as net/http does
	}
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.ended || tw.code != 0 || code < 200 {
		return // informational statuses cannot pass through a buffer
	}
	tw.code = code
}
