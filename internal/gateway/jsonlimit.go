package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Errors of CheckJSON, for callers to branch on; they come wrapped in a
// *JSONError that says where.
var (
	ErrJSONSyntax       = errors.New("invalid JSON")
	ErrJSONDepth        = errors.New("JSON nested too deeply")
	ErrJSONElements     = errors.New("JSON array or object has too many elements")
	ErrJSONDuplicateKey = errors.New("duplicate key in JSON object")
	ErrJSONUTF8         = errors.New("invalid UTF-8 in JSON string")
)

// JSONError is a body CheckJSON refused: which rule, where, and why.
type JSONError struct {
	Err    error  // one of the ErrJSON… sentinels
	Path   string // JSON pointer to the value or container at fault ("" is the whole body)
	Offset int    // byte offset in the body
	Detail string // what exactly, e.g. the duplicate key
}

func (e *JSONError) Error() string {
	msg := e.Err.Error()
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return fmt.Sprintf("%s at %q (byte %d)", msg, e.Path, e.Offset)
}

func (e *JSONError) Unwrap() error { return e.Err }

// LimitBody returns middleware that caps the request body at max bytes with
// http.MaxBytesReader. Reading past the cap fails with *http.MaxBytesError;
// the decoding handler answers it with 413 (internal/server does), so this
// layer writes nothing itself.
func LimitBody(max int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Body != nil {
				r2 := *r // handlers must not modify the request they were given
				r2.Body = http.MaxBytesReader(w, r.Body, max)
				r = &r2
			}
			next.ServeHTTP(w, r)
		})
	}
}

// CheckJSON checks a request body in one pass before it is decoded: it must
// be a single valid JSON value (RFC 8259) with valid UTF-8 in its strings,
// no nesting deeper than maxDepth, no array or object with more than
// maxElements entries, and no object with the same key twice. Duplicate keys
// are a smuggling trick: encoding/json silently keeps the last, while a
// proxy or another parser may keep the first. Keys are compared as decoded
// ("\u0061" is "a") and case-folded the way encoding/json matches struct
// fields ("Text" and "text" fill the same field), so both spellings count
// as the same key. maxDepth or maxElements <= 0 turns that limit off. The
// error is a *JSONError wrapping one of the ErrJSON… sentinels.
//
// Ordinary bodies cost one allocation; the work stack is iterative, so no
// body can exhaust the goroutine stack whatever the limits.
func CheckJSON(data []byte, maxDepth, maxElements int) error {
	s := &jsonScanner{data: data, maxDepth: maxDepth, maxElems: maxElements}
	s.stack, s.arena, s.offs = s.stack0[:0], s.arena0[:0], s.offs0[:0]
	return s.run()
}

// linearKeys is how many keys an object holds before duplicate checks move
// from a linear scan to a map.
const linearKeys = 16

// jsonFrame is one open array or object.
type jsonFrame struct {
	obj        bool
	count      int // entries so far, the current one included
	keyStart   int // raw bytes of the current key, inside the quotes
	keyEnd     int
	keys       int // index in offs of this object's first key
	arenaStart int // where this object's folded keys begin in arena
	set        map[string]struct{}
}

type jsonScanner struct {
	data     []byte
	i        int
	maxDepth int
	maxElems int
	stack    []jsonFrame
	arena    []byte // folded keys of the open objects, back to back
	offs     []int  // start of each key in arena

	// First backing arrays, enough for ordinary bodies: one allocation.
	stack0 [16]jsonFrame
	arena0 [256]byte
	offs0  [32]int
}

func (s *jsonScanner) run() error {
	data := s.data
	expectValue := true
	for {
		s.skipSpace()
		if s.i >= len(data) {
			if !expectValue && len(s.stack) == 0 {
				return nil
			}
			return s.fail(ErrJSONSyntax, len(s.stack), "unexpected end of input")
		}
		c := data[s.i]
		if !expectValue {
			if len(s.stack) == 0 {
				return s.fail(ErrJSONSyntax, 0, "data after the top-level value")
			}
			top := &s.stack[len(s.stack)-1]
			switch {
			case c == ',':
				s.i++
				if top.obj {
					s.skipSpace()
					if err := s.member(); err != nil {
						return err
					}
				} else if err := s.next(top); err != nil {
					return err
				}
				expectValue = true
			case (c == '}' && top.obj) || (c == ']' && !top.obj):
				s.i++
				s.pop()
			default:
				return s.fail(ErrJSONSyntax, len(s.stack), "invalid character "+quoteChar(c)+" after a value")
			}
			continue
		}
		switch {
		case c == '{' || c == '[':
			if err := s.push(c == '{'); err != nil {
				return err
			}
			s.i++
			s.skipSpace()
			top := &s.stack[len(s.stack)-1]
			if s.i < len(data) && data[s.i] == c+2 { // '{'+2 is '}', '['+2 is ']'
				s.i++
				s.pop()
				expectValue = false
				continue
			}
			if top.obj {
				if err := s.member(); err != nil {
					return err
				}
			} else if err := s.next(top); err != nil {
				return err
			}
			continue // a value follows
		case c == '"':
			if _, _, err := s.scanString(len(s.stack)); err != nil {
				return err
			}
		case c == '-' || (c >= '0' && c <= '9'):
			if !s.scanNumber() {
				return s.fail(ErrJSONSyntax, len(s.stack), "invalid number")
			}
		case c == 't':
			if !s.literal("true") {
				return s.fail(ErrJSONSyntax, len(s.stack), "invalid literal")
			}
		case c == 'f':
			if !s.literal("false") {
				return s.fail(ErrJSONSyntax, len(s.stack), "invalid literal")
			}
		case c == 'n':
			if !s.literal("null") {
				return s.fail(ErrJSONSyntax, len(s.stack), "invalid literal")
			}
		default:
			return s.fail(ErrJSONSyntax, len(s.stack), "invalid character "+quoteChar(c)+" looking for a value")
		}
		expectValue = false
	}
}

func (s *jsonScanner) skipSpace() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScanner) push(obj bool) error {
	if s.maxDepth > 0 && len(s.stack) >= s.maxDepth {
		return s.fail(ErrJSONDepth, len(s.stack), fmt.Sprintf("deeper than %d", s.maxDepth))
	}
	s.stack = append(s.stack, jsonFrame{obj: obj, keys: len(s.offs), arenaStart: len(s.arena)})
	return nil
}

func (s *jsonScanner) pop() {
	f := &s.stack[len(s.stack)-1]
	s.arena = s.arena[:f.arenaStart]
	s.offs = s.offs[:f.keys]
	s.stack = s.stack[:len(s.stack)-1]
}

// next counts one more entry in the open container f.
func (s *jsonScanner) next(f *jsonFrame) error {
	f.count++
	if s.maxElems > 0 && f.count > s.maxElems {
		return s.fail(ErrJSONElements, len(s.stack)-1, fmt.Sprintf("more than %d", s.maxElems))
	}
	return nil
}

// member reads `"key" :` in the open object and checks the key is new.
func (s *jsonScanner) member() error {
	if s.i >= len(s.data) || s.data[s.i] != '"' {
		if s.i >= len(s.data) {
			return s.fail(ErrJSONSyntax, len(s.stack)-1, "unexpected end of input")
		}
		return s.fail(ErrJSONSyntax, len(s.stack)-1, "invalid character "+quoteChar(s.data[s.i])+" looking for an object key")
	}
	top := &s.stack[len(s.stack)-1]
	if err := s.next(top); err != nil {
		return err
	}
	at := s.i
	start, end, err := s.scanString(len(s.stack) - 1)
	if err != nil {
		return err
	}
	top.keyStart, top.keyEnd = start, end
	if s.isDuplicate(top, s.data[start:end]) {
		s.i = at
		return s.fail(ErrJSONDuplicateKey, len(s.stack)-1, strconv.Quote(truncate(string(appendUnescaped(nil, s.data[start:end], false)), 64)))
	}
	s.skipSpace()
	if s.i >= len(s.data) || s.data[s.i] != ':' {
		return s.fail(ErrJSONSyntax, len(s.stack), "expected ':' after an object key")
	}
	s.i++
	return nil
}

// isDuplicate folds the raw key into the arena and reports whether the
// object f already has it; otherwise the key is recorded.
func (s *jsonScanner) isDuplicate(f *jsonFrame, raw []byte) bool {
	mark := len(s.arena)
	s.arena = appendUnescaped(s.arena, raw, true)
	k := s.arena[mark:]
	if f.set != nil {
		_, dup := f.set[string(k)]
		if !dup {
			f.set[string(k)] = struct{}{}
		}
		s.arena = s.arena[:mark]
		return dup
	}
	starts := s.offs[f.keys:]
	for j, st := range starts {
		en := mark
		if j+1 < len(starts) {
			en = starts[j+1]
		}
		if bytes.Equal(s.arena[st:en], k) {
			s.arena = s.arena[:mark]
			return true
		}
	}
	if len(starts) < linearKeys {
		s.offs = append(s.offs, mark)
		return false
	}
	f.set = make(map[string]struct{}, 2*linearKeys)
	for j, st := range starts {
		en := mark
		if j+1 < len(starts) {
			en = starts[j+1]
		}
		f.set[string(s.arena[st:en])] = struct{}{}
	}
	f.set[string(k)] = struct{}{}
	s.arena = s.arena[:f.arenaStart]
	s.offs = s.offs[:f.keys]
	return false
}

// stringSafe marks the ASCII bytes that stand for themselves in a string.
var stringSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanString reads the string at s.i (an opening quote) and returns the
// bounds of its raw content.
//
// n is how many open containers the error path goes through.
func (s *jsonScanner) scanString(n int) (start, end int, err error) {
	data := s.data
	i := s.i + 1
	start = i
	for {
		for i < len(data) && data[i] < utf8.RuneSelf && stringSafe[data[i]] {
			i++
		}
		if i >= len(data) {
			s.i = i
			return 0, 0, s.fail(ErrJSONSyntax, n, "unterminated string")
		}
		switch c := data[i]; {
		case c == '"':
			s.i = i + 1
			return start, i, nil
		case c == '\\':
			if i+1 >= len(data) {
				s.i = i
				return 0, 0, s.fail(ErrJSONSyntax, n, "unterminated string")
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if hex4(data[i+2:]) < 0 {
					s.i = i
					return 0, 0, s.fail(ErrJSONSyntax, n, "invalid \\u escape")
				}
				i += 6
			default:
				s.i = i
				return 0, 0, s.fail(ErrJSONSyntax, n, "invalid escape "+quoteChar(data[i+1]))
			}
		case c < 0x20:
			s.i = i
			return 0, 0, s.fail(ErrJSONSyntax, n, "control character in string")
		default:
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				s.i = i
				return 0, 0, s.fail(ErrJSONUTF8, n, "")
			}
			i += size
		}
	}
}

// hex4 reads four hex digits, or returns -1.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// scanNumber reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at s.i.
func (s *jsonScanner) scanNumber() bool {
	data, i := s.data, s.i
	digits := func() bool {
		j := i
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
		return i > j
	}
	if data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case !digits():
		s.i = i
		return false
	}
	if i < len(data) && data[i] == '.' {
		i++
		if !digits() {
			s.i = i
			return false
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if !digits() {
			s.i = i
			return false
		}
	}
	s.i = i
	return true
}

func (s *jsonScanner) literal(lit string) bool {
	if !bytes.HasPrefix(s.data[s.i:], []byte(lit)) {
		return false
	}
	s.i += len(lit)
	return true
}

// fail builds the error, with the path through the first n open containers.
func (s *jsonScanner) fail(err error, n int, detail string) error {
	var b strings.Builder
	for _, f := range s.stack[:n] {
		if f.count == 0 {
			break
		}
		b.WriteByte('/')
		if !f.obj {
			b.WriteString(strconv.Itoa(f.count - 1))
			continue
		}
		key := truncate(string(appendUnescaped(nil, s.data[f.keyStart:f.keyEnd], false)), 64)
		key = strings.ReplaceAll(key, "~", "~0")
		b.WriteString(strings.ReplaceAll(key, "/", "~1"))
	}
	return &JSONError{Err: err, Path: b.String(), Offset: s.i, Detail: detail}
}

// appendUnescaped appends the decoded content of a valid raw JSON string to
// out, exactly as encoding/json decodes it (a lone surrogate becomes
// U+FFFD). With fold, each rune is replaced by the representative of its
// case-folding class, as encoding/json folds names to match struct fields.
func appendUnescaped(out, raw []byte, fold bool) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' && c < utf8.RuneSelf {
			if fold && 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			out = append(out, c)
			i++
			continue
		}
		var r rune
		if c == '\\' {
			switch raw[i+1] {
			case 'b':
				r = '\b'
			case 'f':
				r = '\f'
			case 'n':
				r = '\n'
			case 'r':
				r = '\r'
			case 't':
				r = '\t'
			case 'u':
				r = hex4(raw[i+2:])
				i += 4
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if i+2 < len(raw) && raw[i+2] == '\\' && raw[i+3] == 'u' {
						r2 = hex4(raw[i+4:])
					}
					if dec := utf16.DecodeRune(r, r2); dec != unicode.ReplacementChar {
						r = dec
						i += 6
					} else {
						r = unicode.ReplacementChar
					}
				}
			default: // '"', '\\', '/'
				r = rune(raw[i+1])
			}
			i += 2
		} else {
			var size int
			r, size = utf8.DecodeRune(raw[i:])
			i += size
		}
		if fold {
			r = foldRune(r)
		}
		out = utf8.AppendRune(out, r)
	}
	return out
}

// foldRune returns the smallest rune of r's case-folding orbit (for ASCII
// letters, the upper case), as encoding/json does.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' {
			r -= 'a' - 'A'
		}
		return r
	}
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	if c >= utf8.RuneSelf {
		s = fmt.Sprintf(`"\x%02x"`, c)
	}
	return "'" + s[1:len(s)-1] + "'"
}
