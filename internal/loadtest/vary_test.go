package loadtest

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestVary(t *testing.T) {
	src := [][]byte{
		[]byte(`{"query":"chest pain","vitals":{"hr":112,"temp":37.0},"id":12345678901234567890}`),
		[]byte(`{"patient":{"age":4}}`), // no query: one is set
		[]byte(`{"query":"fever & rash <3d"}`),
		[]byte(`not json`), // cannot be varied: copied as is
	}
	got := Vary(src, 10)
	if len(got) != 10 {
		t.Fatalf("len = %d, want 10", len(got))
	}
	seen := map[string]bool{}
	for i, b := range got {
		if i%4 == 3 {
			if string(b) != "not json" {
				t.Errorf("body %d = %q, want the non-JSON body unchanged", i, b)
			}
			continue
		}
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("body %d %q: %v", i, b, err)
		}
		q, _ := v["query"].(string)
		if seen[q] {
			t.Errorf("query %q repeated", q)
		}
		seen[q] = true
	}
	for _, want := range []string{"chest pain #0", "#1", "fever & rash <3d #2", "chest pain #4", "#9"} {
		if !seen[want] {
			t.Errorf("no query %q among %v", want, seen)
		}
	}
	// Numbers keep their text and the rest of the object survives.
	if s := string(got[0]); !strings.Contains(s, `"temp":37.0`) || !strings.Contains(s, `12345678901234567890`) {
		t.Errorf("body 0 = %s, want numbers as written", s)
	}
	// The source is not modified.
	if string(src[0]) != `{"query":"chest pain","vitals":{"hr":112,"temp":37.0},"id":12345678901234567890}` {
		t.Errorf("source modified: %s", src[0])
	}
	if Vary(nil, 3) != nil || Vary(src, 0) != nil {
		t.Error("Vary of nothing should be nil")
	}
}
