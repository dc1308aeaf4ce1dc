package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheckJSON(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	deepObj := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	elems := func(n int) string { return "[" + strings.TrimSuffix(strings.Repeat("1,", n), ",") + "]" }
	members := func(n int) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `"k%d":%d`, i, i)
		}
		return b.String() + "}"
	}
	tests := []struct {
		name     string
		in       string
		wantErr  error
		wantPath string
	}{
		// valid
		{"inference body", inferenceBody, nil, ""},
		{"scalar", `42`, nil, ""},
		{"string", `"x"`, nil, ""},
		{"literals", ` [true, false, null] `, nil, ""},
		{"numbers", `[0, -0, 1.5, -2e10, 3E+2, 4.0e-3, 123456789012345678901234567890]`, nil, ""},
		{"escapes", `"\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00"`, nil, ""},
		{"utf-8", `{"name":"Zoë 患者 😀"}`, nil, ""},
		{"empty containers", `{"a":{},"b":[],"c":[{}]}`, nil, ""},
		{"same key at different levels", `{"a":{"a":1},"b":{"a":2}}`, nil, ""},
		{"same key in sibling objects", `[{"a":1},{"a":2}]`, nil, ""},
		{"depth exactly max", deep(32), nil, ""},
		{"object depth exactly max", deepObj(32), nil, ""},
		{"elements exactly max", elems(100), nil, ""},
		{"members exactly max", members(100), nil, ""},
		{"many distinct keys (map path)", members(100), nil, ""},
		{"lone surrogate", `"\ud800"`, nil, ""},

		// limits
		{"too deep", deep(33), ErrJSONDepth, "/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0"},
		{"too deep object", deepObj(33), ErrJSONDepth, strings.Repeat("/a", 32)},
		{"too many elements", elems(101), ErrJSONElements, ""},
		{"too many members", members(101), ErrJSONElements, ""},
		{"too many nested", `{"inputs":[{"data":` + elems(101) + `}]}`, ErrJSONElements, "/inputs/0/data"},

		// duplicates
		{"duplicate key", `{"query":"benign","query":"evil"}`, ErrJSONDuplicateKey, ""},
		{"duplicate nested", `{"patient":{"id":"a","age":3,"id":"b"}}`, ErrJSONDuplicateKey, "/patient"},
		{"duplicate escaped", `{"a":1,"\u0061":2}`, ErrJSONDuplicateKey, ""},
		{"duplicate escaped slash", `{"a/b":1,"a\/b":2}`, ErrJSONDuplicateKey, ""},
		{"duplicate by case", `{"text":"a","Text":"b"}`, ErrJSONDuplicateKey, ""},
		{"duplicate by unicode fold (long s)", `{"status":1,"ſtatus":2}`, ErrJSONDuplicateKey, ""},
		{"duplicate by kelvin sign", `{"k":1,"\u212a":2}`, ErrJSONDuplicateKey, ""},
		{"duplicate lone surrogates", `{"\ud800":1,"\udc00":2}`, ErrJSONDuplicateKey, ""},
		{"duplicate surrogate vs replacement", `{"\ud800":1,"\ufffd":2}`, ErrJSONDuplicateKey, ""},
		{"duplicate pair vs literal", `{"\uD83D\uDE00":1,"😀":2}`, ErrJSONDuplicateKey, ""},
		{"duplicate after many keys (map path)", strings.TrimSuffix(members(40), "}") + `,"K7":0}`, ErrJSONDuplicateKey, ""},
		{"duplicate among many, in array", `[1,` + strings.TrimSuffix(members(20), "}") + `,"k19":0}]`, ErrJSONDuplicateKey, "/1"},
		{"duplicate after a nested object", `{"a":{"x":1,"y":2},"b":1,"a":3}`, ErrJSONDuplicateKey, ""},

		// UTF-8
		{"invalid utf-8", "{\"a\":\"\xff\"}", ErrJSONUTF8, "/a"},
		{"truncated utf-8", "\"\xe6\x82\"", ErrJSONUTF8, ""},
		{"utf-8 surrogate", "\"\xed\xa0\x80\"", ErrJSONUTF8, ""},
		{"overlong utf-8", "\"\xc0\xaf\"", ErrJSONUTF8, ""},
		{"invalid utf-8 in key", "{\"\xff\":1}", ErrJSONUTF8, ""},

		// syntax
		{"empty", ``, ErrJSONSyntax, ""},
		{"spaces", `   `, ErrJSONSyntax, ""},
		{"trailing comma array", `[1,]`, ErrJSONSyntax, "/1"},
		{"trailing comma object", `{"a":1,}`, ErrJSONSyntax, ""},
		{"leading zero", `01`, ErrJSONSyntax, ""},
		{"bare minus", `-`, ErrJSONSyntax, ""},
		{"dot without digits", `1.`, ErrJSONSyntax, ""},
		{"exponent without digits", `1e+`, ErrJSONSyntax, ""},
		{"plus sign", `+1`, ErrJSONSyntax, ""},
		{"hex", `0x10`, ErrJSONSyntax, ""},
		{"NaN", `NaN`, ErrJSONSyntax, ""},
		{"bad literal", `tru`, ErrJSONSyntax, ""},
		{"glued literals", `[truefalse]`, ErrJSONSyntax, "/0"},
		{"single quotes", `{'a':1}`, ErrJSONSyntax, ""},
		{"unquoted key", `{a:1}`, ErrJSONSyntax, ""},
		{"missing colon", `{"a" 1}`, ErrJSONSyntax, "/a"},
		{"missing value", `{"a":}`, ErrJSONSyntax, "/a"},
		{"unterminated string", `"abc`, ErrJSONSyntax, ""},
		{"bad escape", `"\x"`, ErrJSONSyntax, ""},
		{"short unicode escape", `"\u12"`, ErrJSONSyntax, ""},
		{"raw control character", "\"a\nb\"", ErrJSONSyntax, ""},
		{"two values", `{} {}`, ErrJSONSyntax, ""},
		{"mismatched close", `[1}`, ErrJSONSyntax, "/0"},
		{"unclosed", `{"a":[1,2`, ErrJSONSyntax, "/a/1"},
		{"comment", `{"a":1 /* x */}`, ErrJSONSyntax, "/a"},
		{"BOM", "\ufeff{}", ErrJSONSyntax, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckJSON([]byte(tt.in), 32, 100)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("CheckJSON = %v, want nil", err)
				}
				if !json.Valid([]byte(tt.in)) {
					t.Fatalf("accepted, but json.Valid refuses")
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("CheckJSON = %v, want %v", err, tt.wantErr)
			}
			var je *JSONError
			if !errors.As(err, &je) {
				t.Fatalf("error %T is not a *JSONError", err)
			}
			if je.Path != tt.wantPath {
				t.Errorf("path = %q, want %q (%v)", je.Path, tt.wantPath, err)
			}
			if je.Offset < 0 || je.Offset > len(tt.in) {
				t.Errorf("offset %d out of range", je.Offset)
			}
		})
	}
}

func TestCheckJSONMessages(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{`{"patient":{"id":"a","ID":"b"}}`, `duplicate key in JSON object: "ID" at "/patient" (byte 21)`},
		{`[[[1]]]`, `JSON nested too deeply: deeper than 2 at "/0/0" (byte 2)`},
		{`[1,2,3,4,5]`, `JSON array or object has too many elements: more than 4 at "" (byte 9)`},
		{`{"a~b/c":[x]}`, `invalid JSON: invalid character 'x' looking for a value at "/a~0b~1c/0" (byte 10)`},
	}
	for _, tt := range tests {
		maxDepth, maxElems := 2, 4
		err := CheckJSON([]byte(tt.in), maxDepth, maxElems)
		if err == nil || err.Error() != tt.want {
			t.Errorf("CheckJSON(%s) = %v\nwant %s", tt.in, err, tt.want)
		}
	}
}

func TestCheckJSONNoLimits(t *testing.T) {
	in := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	if err := CheckJSON([]byte(in), 0, 0); err != nil {
		t.Errorf("depth 100000 with no limit: %v", err)
	}
	if err := CheckJSON([]byte(in), 10000, 0); !errors.Is(err, ErrJSONDepth) {
		t.Errorf("depth 100000 with limit 10000: %v", err)
	}
}

func TestLimitBody(t *testing.T) {
	tests := []struct {
		body    string
		max     int64
		wantErr bool
	}{
		{"12345", 5, false},
		{"123456", 5, true},
		{"", 0, false},
	}
	for _, tt := range tests {
		var got []byte
		var err error
		var orig *http.Request
		h := LimitBody(tt.max)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r == orig {
				t.Error("LimitBody modified the caller's request in place")
			}
			got, err = io.ReadAll(r.Body)
		}))
		orig = httptest.NewRequest("POST", "/", strings.NewReader(tt.body))
		body := orig.Body
		h.ServeHTTP(httptest.NewRecorder(), orig)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) != tt.wantErr {
			t.Errorf("body %q max %d: err = %v, want MaxBytesError %v", tt.body, tt.max, err, tt.wantErr)
		}
		if !tt.wantErr && string(got) != tt.body {
			t.Errorf("read %q, want %q", got, tt.body)
		}
		if orig.Body != body {
			t.Error("caller's request body replaced")
		}
	}
}

func TestTLSConfig(t *testing.T) {
	c := TLSConfig()
	if c.MinVersion != 0x0303 {
		t.Errorf("MinVersion = %#x, want TLS 1.2", c.MinVersion)
	}
	if c.CipherSuites != nil {
		t.Error("CipherSuites set: Go's defaults are meant")
	}
	if TLSConfig() == c {
		t.Error("TLSConfig shares one config between callers")
	}
}

// inferenceBody is a 2 KB /api/v1/inference request (SPEC section 4).
var inferenceBody = func() string {
	s := `{"query": "58 year old man with crushing central chest pain radiating to the left arm and jaw, started 40 minutes ago at rest, sweaty and nauseous, short of breath on minimal exertion; history of hypertension, type 2 diabetes and hyperlipidaemia; ex-smoker (30 pack-years); father had a myocardial infarction at 52; no recent trauma, no fever; took aspirin 300 mg in the ambulance; pain 8/10, not relieved by rest; denies syncope; denies palpitations; on warfarin for atrial fibrillation diagnosed last year, INR unknown; also takes metformin, ramipril and atorvastatin",
 "patient": {"id": "MRN-0042", "age": 58, "sex": "male"},
 "vitals": {"sbp": 88, "dbp": 54, "hr": 118, "rr": 24, "temp_c": 37.1, "spo2": 93, "gcs": 15, "pain": 8, "avpu": "alert"},
 "context": {"arrival_mode": "ambulance", "injury": false, "medical_domain": "emergency", "nurse_acuity": 3},
 "medications": ["warfarin", "aspirin", "metformin", "ramipril", "atorvastatin", "glyceryl trinitrate", "omeprazole"],
 "options": {"explain": true, "use_cache": true}}`
	pad := 2048 - len(s) - len(`,"notes":""}`)
	return strings.TrimSuffix(s, "}") + `,"notes":"` + strings.Repeat("x", max(pad, 0)) + `"}`
}()

// TestDuplicateFoldingMatchesDecoder shows why keys are compared folded:
// encoding/json fills the same struct field from each spelling, so the
// second silently overrides the first.
func TestDuplicateFoldingMatchesDecoder(t *testing.T) {
	for _, key := range []string{"status", "Status", "STATUS", "ſtatus", `\u0073tatus`} {
		var v struct {
			Status int `json:"status"`
		}
		if err := json.Unmarshal([]byte(`{"`+key+`":7}`), &v); err != nil || v.Status != 7 {
			t.Errorf("key %s: decoded %d, %v; want the status field filled", key, v.Status, err)
		}
		if err := CheckJSON([]byte(`{"status":1,"`+key+`":7}`), 32, 100); !errors.Is(err, ErrJSONDuplicateKey) {
			t.Errorf("key %s next to status: %v, want a duplicate", key, err)
		}
	}
}
