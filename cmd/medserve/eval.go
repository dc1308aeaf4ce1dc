package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"medserve/internal/clinical"
	"medserve/internal/text"
	"medserve/internal/validate"
)

func cmdEval(ctx context.Context, e env) error {
	if len(e.args) == 0 {
		fmt.Fprintln(e.stderr, "Usage: medserve eval negation|interactions|differential [--json] ...")
		return errUsage
	}
	switch e.args[0] {
	case "negation":
		e.args = e.args[1:]
		return cmdEvalNegation(ctx, e)
	case "interactions":
		e.args = e.args[1:]
		return cmdEvalInteractions(ctx, e)
	case "differential":
		e.args = e.args[1:]
		return cmdEvalDifferential(ctx, e)
	case "triage":
		e.args = e.args[1:]
		return cmdEvalTriage(ctx, e)
	}
	fmt.Fprintf(e.stderr, "unknown evaluation %q (have: negation, interactions, differential, triage)\n", e.args[0])
	return errUsage
}

func cmdEvalNegation(_ context.Context, e env) error {
	fset := flag.NewFlagSet("eval negation", flag.ContinueOnError)
	file := fset.String("file", "", "annotated set in the format of data/negex/rsAnnotations-1-120-random.txt")
	asJSON := fset.Bool("json", false, "print the report as JSON")
	showErrors := fset.Bool("errors", false, "list the items whose negation was predicted wrong")
	dataDir := clinicalDataFlag(fset, e.getenv)
	if err := parseFlags(fset, e); err != nil {
		return err
	}
	if *file == "" {
		fmt.Fprintln(e.stderr, "eval negation: --file is required")
		return errUsage
	}
	f, err := os.Open(*file)
	if err != nil {
		return err
	}
	defer f.Close()
	items, err := validate.ParseAnnotations(f)
	if err != nil {
		return fmt.Errorf("%s: %w", *file, err)
	}
	eng, err := loadEngine(*dataDir)
	if err != nil {
		return err
	}
	score := validate.ScoreContext(items, func(sentence string, targets []string) []clinical.Finding {
		return eng.Analyze(sentence, text.Options{Targets: targets}).Findings
	})
	if *asJSON {
		if !*showErrors {
			score.Errors = nil
		}
		return writeJSON(e.stdout, score)
	}
	return printContextScore(e.stdout, *file, score, *showErrors)
}

func printContextScore(w io.Writer, file string, s validate.ContextScore, showErrors bool) error {
	var b strings.Builder
	fmt.Fprintf(&b, "file: %s\nitems: %d  scored: %d  not found: %d\n\n", file, s.Items, s.Scored, s.NotFound)
	fmt.Fprintf(&b, "%-22s %6s %6s %6s %6s %9s %7s %7s %8s\n", "label", "TP", "FP", "FN", "TN", "precision", "recall", "F1", "accuracy")
	for _, r := range []struct {
		name string
		r    validate.BinaryReport
	}{{"Negated", s.Negated}, {"Historical", s.Historical}, {"Experiencer not patient", s.Experiencer}} {
		fmt.Fprintf(&b, "%-22s %6d %6d %6d %6d %9.3f %7.3f %7.3f %8.3f\n", r.name, r.r.TP, r.r.FP, r.r.FN, r.r.TN, r.r.Precision, r.r.Recall, r.r.F1, r.r.Accuracy)
	}
	for _, dim := range []string{"negation", "temporality", "experiencer"} {
		fmt.Fprintf(&b, "\nconfusion (%s): rows gold, columns predicted\n", dim)
		writeConfusion(&b, s.Confusion[dim])
	}
	if s.NotFound > 0 {
		b.WriteString("\nnot found (concept absent from its sentence; not scored):\n")
		for _, a := range s.NotFoundItems {
			fmt.Fprintf(&b, "  line %d: %q\n", a.Line, a.Concept)
		}
	}
	if showErrors {
		b.WriteString("\nnegation errors:\n")
		for _, it := range s.Errors {
			fmt.Fprintf(&b, "  line %d gold %s: %q in %q\n", it.Line, it.Negation, it.Concept, it.Sentence)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeConfusion(b *strings.Builder, m validate.Map) {
	cols := map[string]bool{}
	var rows []string
	for g, preds := range m {
		rows = append(rows, g)
		for p := range preds {
			cols[p] = true
		}
	}
	var cs []string
	for c := range cols {
		cs = append(cs, c)
	}
	sort.Strings(rows)
	sort.Strings(cs)
	fmt.Fprintf(b, "  %-16s", "")
	for _, c := range cs {
		fmt.Fprintf(b, " %12s", c)
	}
	b.WriteByte('\n')
	for _, r := range rows {
		fmt.Fprintf(b, "  %-16s", r)
		for _, c := range cs {
			fmt.Fprintf(b, " %12d", m[r][c])
		}
		b.WriteByte('\n')
	}
}

func cmdLexicon(_ context.Context, e env) error {
	fset := flag.NewFlagSet("lexicon", flag.ContinueOnError)
	dataDir := clinicalDataFlag(fset, e.getenv)
	if err := parseFlags(fset, e); err != nil {
		return err
	}
	eng, err := loadEngine(*dataDir)
	if err != nil {
		return err
	}
	return writeJSON(e.stdout, eng.Stats())
}
