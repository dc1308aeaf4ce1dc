package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"

	"flag"
	"fmt"
	"io"
	"strings"

	"medserve/internal/clinical"
	"medserve/internal/text"
)

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ", ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// maxJSONLLine bounds one input line of analyze --jsonl.
const maxJSONLLine = 16 << 20

func cmdAnalyze(ctx context.Context, e env) error {
	fset := flag.NewFlagSet("analyze", flag.ContinueOnError)
	var targets stringList
	fset.Var(&targets, "target", "a phrase to find and qualify (repeatable)")
	asJSON := fset.Bool("json", false, "print the analysis as JSON")
	jsonl := fset.Bool("jsonl", false, `read {"text": "...", "targets": [...]} lines from stdin, write one JSON analysis per line`)
	dataDir := clinicalDataFlag(fset, e.getenv)
	fset.Usage = func() {
		fmt.Fprintln(fset.Output(), "Usage: medserve analyze [--target PHRASE]... [--json] TEXT\n       medserve analyze --jsonl < lines.jsonl")
		fset.PrintDefaults()
	}
	if err := parseFlags(fset, e); err != nil {
		return err
	}
	if !*jsonl && fset.NArg() == 0 {
		fset.Usage()
		return errUsage
	}
	eng, err := loadEngine(*dataDir)
	if err != nil {
		return err
	}
	if *jsonl {
		return analyzeJSONL(ctx, eng, e.stdin, e.stdout)
	}
	a := eng.Analyze(strings.Join(fset.Args(), " "), text.Options{Targets: targets})
	if *asJSON {
		return writeJSON(e.stdout, jsonAnalysis(a))
	}
	return printAnalysis(e.stdout, a)
}

type jsonlRequest struct {
	Text    string   `json:"text"`
	Targets []string `json:"targets"`
}

// jsonLines answers every non-empty input line with one output line. A
// line that handle cannot answer gets {"error", "problems"} in its place,
// so the output stays aligned with the input, and the command fails at the
// end.
func jsonLines(ctx context.Context, in io.Reader, out io.Writer, handle func(raw []byte) (any, []string)) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64*1024), maxJSONLLine)
	w := bufio.NewWriter(out)
	defer w.Flush()
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	bad, line := 0, 0
	for sc.Scan() {
		if err := ctx.Err(); err != nil {
			return err
		}
		line++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		answer, problems := handle(raw)
		if len(problems) > 0 {
			bad++
			answer = map[string]any{"error": fmt.Sprintf("line %d: invalid request", line), "problems": problems}
		}
		if err := enc.Encode(answer); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read stdin: %w", err)
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d lines were not valid requests", bad, line)
	}
	return nil
}

// decodeStrict decodes one JSON value, rejecting unknown fields.
func decodeStrict(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func analyzeJSONL(ctx context.Context, eng *text.Engine, in io.Reader, out io.Writer) error {
	return jsonLines(ctx, in, out, func(raw []byte) (any, []string) {
		var req jsonlRequest
		if err := decodeStrict(raw, &req); err != nil {
			return nil, []string{err.Error()}
		}
		return jsonAnalysis(eng.Analyze(req.Text, text.Options{Targets: req.Targets})), nil
	})
}

// jsonAnalysis makes empty lists encode as [] rather than null.
func jsonAnalysis(a text.Analysis) text.Analysis {
	if a.Findings == nil {
		a.Findings = []clinical.Finding{}
	}
	if a.Quantities == nil {
		a.Quantities = []clinical.Quantity{}
	}
	if a.Implausible == nil {
		a.Implausible = []clinical.Implausible{}
	}
	return a
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printAnalysis(w io.Writer, a text.Analysis) error {
	var b strings.Builder
	fmt.Fprintf(&b, "domain: %s\n", a.Domain)
	if len(a.Findings) == 0 {
		b.WriteString("findings: none\n")
	}
	for _, f := range a.Findings {
		var flags []string
		for _, fl := range []struct {
			on   bool
			name string
		}{{f.Negated, "negated"}, {f.Possible, "possible"}, {f.Historical, "historical"}, {f.Hypothetical, "hypothetical"}, {f.Family, "family"}} {
			if fl.on {
				flags = append(flags, fl.name)
			}
		}
		if len(flags) == 0 {
			flags = []string{"affirmed"}
		}
		name := f.Name
		if f.Target != "" {
			name = "target " + f.Target
		}
		fmt.Fprintf(&b, "%-9s %-28q %-32s %-16s [%d,%d] %s\n", f.Type, f.Text, name, f.Code, f.Span[0], f.Span[1], strings.Join(flags, ","))
	}
	vj, err := json.Marshal(a.Vitals)
	if err != nil {
		return err
	}
	fmt.Fprintf(&b, "vitals: %s\n", vj)
	for _, q := range a.Quantities {
		fmt.Fprintf(&b, "quantity: %q = %g %s (%s)\n", q.Text, q.Value, q.Unit, q.Kind)
	}
	for _, im := range a.Implausible {
		fmt.Fprintf(&b, "implausible: %s = %g: %s\n", im.Field, im.Value, im.Reason)
	}
	_, err = io.WriteString(w, b.String())
	return err
}
