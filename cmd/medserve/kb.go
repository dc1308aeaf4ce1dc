package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"medserve/internal/clinical"
	"medserve/internal/kb"
	"medserve/internal/text"
)

func loadKB(dir string) (*kb.KB, error) {
	fsys, err := dataFS(dir)
	if err != nil {
		return nil, err
	}
	k, err := kb.Load(fsys)
	if err != nil {
		return nil, err
	}
	return k, nil
}

func cmdInteractions(_ context.Context, e env) error {
	fset := flag.NewFlagSet("interactions", flag.ContinueOnError)
	asJSON := fset.Bool("json", false, "print the report as JSON")
	dataDir := clinicalDataFlag(fset, e.getenv)
	fset.Usage = func() {
		fmt.Fprintln(fset.Output(), "Usage: medserve interactions [--json] DRUG DRUG...")
		fset.PrintDefaults()
	}
	if err := parseFlags(fset, e); err != nil {
		return err
	}
	if fset.NArg() == 0 {
		fset.Usage()
		return errUsage
	}
	k, err := loadKB(*dataDir)
	if err != nil {
		return err
	}
	rep := k.CheckInteractions(fset.Args())
	if *asJSON {
		return writeJSON(e.stdout, rep)
	}
	var b strings.Builder
	for _, m := range rep.Medications {
		if m.Match == kb.MatchUnknown {
			fmt.Fprintf(&b, "%-28q UNKNOWN — not checked\n", m.Input)
			continue
		}
		fmt.Fprintf(&b, "%-28q → %s (%s)\n", m.Input, m.Generic, m.Match)
	}
	if len(rep.Duplicates) > 0 {
		fmt.Fprintf(&b, "duplicates (checked once): %s\n", strings.Join(rep.Duplicates, ", "))
	}
	if len(rep.Interactions) == 0 {
		b.WriteString("no interactions found among the known drugs\n")
	}
	for _, a := range rep.Interactions {
		fmt.Fprintf(&b, "%-16s %s + %s: %s\n                 source: %s\n", strings.ToUpper(a.Severity), a.Drugs[0], a.Drugs[1], a.Effect, a.Source)
	}
	_, err = io.WriteString(e.stdout, b.String())
	return err
}

func cmdDifferential(_ context.Context, e env) error {
	fset := flag.NewFlagSet("differential", flag.ContinueOnError)
	asJSON := fset.Bool("json", false, "print the candidates as JSON")
	age := fset.Float64("age", math.NaN(), "patient age in years")
	sex := fset.String("sex", "", "patient sex: female, male, other, unknown")
	top := fset.Int("top", 5, "candidates to show (severe conditions with support are added beyond)")
	dataDir := clinicalDataFlag(fset, e.getenv)
	fset.Usage = func() {
		fmt.Fprintln(fset.Output(), "Usage: medserve differential [--json] [--age N] [--sex S] TEXT")
		fset.PrintDefaults()
	}
	if err := parseFlags(fset, e); err != nil {
		return err
	}
	if fset.NArg() == 0 {
		fset.Usage()
		return errUsage
	}
	switch *sex {
	case "", "female", "male", "other", "unknown":
	default:
		fmt.Fprintf(e.stderr, "differential: --sex %q: want female, male, other or unknown\n", *sex)
		return errUsage
	}
	eng, err := loadEngine(*dataDir)
	if err != nil {
		return err
	}
	k, err := loadKB(*dataDir)
	if err != nil {
		return err
	}
	a := eng.Analyze(strings.Join(fset.Args(), " "), text.Options{})
	pt := kb.Patient{Sex: *sex}
	if !math.IsNaN(*age) {
		pt.Age = age
	} else {
		for _, q := range a.Quantities {
			if q.Kind == clinical.KindAge {
				v := q.Value
				pt.Age = &v
				break
			}
		}
	}
	cands := k.Differential(a.Findings, pt, *top)
	if *asJSON {
		return writeJSON(e.stdout, cands)
	}
	var b strings.Builder
	if len(cands) == 0 {
		b.WriteString("no condition of the knowledge base is supported by the findings\n")
	}
	for i, c := range cands {
		flag := ""
		if c.MustNotMiss {
			flag = "  MUST NOT MISS"
		}
		fmt.Fprintf(&b, "%2d. %-40s %-8s p=%.3f severity %d%s\n    for: %s", i+1, c.Condition, c.ICD10, c.Probability, c.Severity, flag, strings.Join(c.Supporting, ", "))
		if len(c.Against) > 0 {
			fmt.Fprintf(&b, "; against: %s", strings.Join(c.Against, ", "))
		}
		b.WriteByte('\n')
	}
	_, err = io.WriteString(e.stdout, b.String())
	return err
}

func cmdEvalInteractions(_ context.Context, e env) error {
	fset := flag.NewFlagSet("eval interactions", flag.ContinueOnError)
	asJSON := fset.Bool("json", false, "print the report as JSON")
	dataDir := clinicalDataFlag(fset, e.getenv)
	if err := parseFlags(fset, e); err != nil {
		return err
	}
	k, err := loadKB(*dataDir)
	if err != nil {
		return err
	}
	ev := k.EvalInteractions()
	if *asJSON {
		return writeJSON(e.stdout, ev)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "CRESCENDDI positive controls (distinct pairs): sensitivity %d/%d = %.3f\n  NOTE: %s\n", ev.Sensitivity.Hit, ev.Sensitivity.N, ev.Sensitivity.Rate, ev.PositivesNote)
	for _, m := range []map[string]kb.Rate{ev.BySource, ev.BySeverity} {
		for _, key := range sortedKeys(m) {
			r := m[key]
			fmt.Fprintf(&b, "    %-24s %d/%d = %.3f\n", key, r.Hit, r.N, r.Rate)
		}
	}
	fmt.Fprintf(&b, "CRESCENDDI negative controls (distinct pairs): specificity %d/%d = %.3f\n", ev.Specificity.Hit, ev.Specificity.N, ev.Specificity.Rate)
	for _, a := range ev.NegativeAlerts {
		fmt.Fprintf(&b, "    alerted: %s\n", a)
	}
	fmt.Fprintf(&b, "High-priority list (Phansalkar et al. 2012): %d/%d items detected on every member pair\n", ev.HighPriorityHit, ev.HighPriorityN)
	for _, it := range ev.HighPriority {
		mark := "ok  "
		if !it.Detected {
			mark = "MISS"
		}
		fmt.Fprintf(&b, "  %s %-4s %-40s member pairs %d/%d  e.g. %s\n", mark, it.Item, it.Effect, it.Pairs.Hit, it.Pairs.N, it.Example)
		for _, m := range it.Missed {
			fmt.Fprintf(&b, "         missed: %s\n", m)
		}
	}
	_, err = io.WriteString(e.stdout, b.String())
	return err
}

func cmdEvalDifferential(_ context.Context, e env) error {
	fset := flag.NewFlagSet("eval differential", flag.ContinueOnError)
	asJSON := fset.Bool("json", false, "print the report as JSON")
	dataDir := clinicalDataFlag(fset, e.getenv)
	if err := parseFlags(fset, e); err != nil {
		return err
	}
	fsys, err := dataFS(*dataDir)
	if err != nil {
		return err
	}
	eng, err := text.Load(fsys)
	if err != nil {
		return err
	}
	k, err := kb.Load(fsys)
	if err != nil {
		return err
	}
	ev, err := k.EvalDifferential(fsys, func(t string) []clinical.Finding { return eng.Analyze(t, text.Options{}).Findings })
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, ev)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", ev.Note)
	for _, ds := range sortedKeys(ev.Datasets) {
		r, r3 := ev.Datasets[ds], ev.Top3[ds]
		fmt.Fprintf(&b, "  %-28s top-1 %d/%d = %.3f   top-3 %d/%d = %.3f\n", ds, r.Hit, r.N, r.Rate, r3.Hit, r3.N, r3.Rate)
	}
	for _, l := range sortedKeys(ev.ByLabel) {
		r := ev.ByLabel[l]
		fmt.Fprintf(&b, "    %-60s top-1 %d/%d\n", l, r.Hit, r.N)
	}
	fmt.Fprintf(&b, "  rows without a DDXPlus condition (not scored): %d; rows with an empty differential: %d\n", ev.Unmapped, ev.NoOutput)
	_, err = io.WriteString(e.stdout, b.String())
	return err
}

func cmdKB(_ context.Context, e env) error {
	fset := flag.NewFlagSet("kb", flag.ContinueOnError)
	dataDir := clinicalDataFlag(fset, e.getenv)
	if err := parseFlags(fset, e); err != nil {
		return err
	}
	k, err := loadKB(*dataDir)
	if err != nil {
		return err
	}
	return writeJSON(e.stdout, k.Stats())
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
