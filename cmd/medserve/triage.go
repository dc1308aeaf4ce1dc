package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"medserve/internal/clinical"
	"medserve/internal/pipeline"
	"medserve/internal/triage"
	"medserve/internal/validate"
)

const ktasFile = "ktas-triage/data.csv"

// triageDeps loads what every triage command needs: the data tree, the text
// engine, the safety rules and the featurizer.
func triageDeps(dataDir string) (fs.FS, *triage.Featurizer, error) {
	fsys, err := dataFS(dataDir)
	if err != nil {
		return nil, nil, err
	}
	eng, err := loadEngine(dataDir)
	if err != nil {
		return nil, nil, err
	}
	rb, err := fs.ReadFile(fsys, "triage/safety-floor.tsv")
	if err != nil {
		return nil, nil, fmt.Errorf("safety floor: %w", err)
	}
	rules, err := triage.ParseRules(bytes.NewReader(rb), "data/triage/safety-floor.tsv")
	if err != nil {
		return nil, nil, err
	}
	return fsys, triage.NewFeaturizer(eng, rules), nil
}

// readKTAS reads a KTAS-format file from disk, or the bundled development
// rows when path is empty. It returns the SHA-256 of the bytes read.
func readKTAS(fsys fs.FS, path string) ([]triage.Case, string, []string, error) {
	var raw []byte
	var err error
	if path == "" {
		raw, err = fs.ReadFile(fsys, ktasFile)
	} else {
		raw, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, "", nil, err
	}
	cases, warnings, err := triage.ParseKTAS(bytes.NewReader(raw))
	if err != nil {
		return nil, "", nil, err
	}
	sum := sha256.Sum256(raw)
	return cases, hex.EncodeToString(sum[:]), warnings, nil
}

// modelsDir is where model versions live: --models, MEDSERVE_MODELS, ./models.
func modelsFlag(fset *flag.FlagSet, getenv func(string) string) *string {
	def := getenv("MEDSERVE_MODELS")
	if def == "" {
		def = "models"
	}
	return fset.String("models", def, "model repository directory (env MEDSERVE_MODELS)")
}

// TriageReport is the report of `eval triage` and of training.
type TriageReport struct {
	Data struct {
		File     string   `json:"file"`
		SHA256   string   `json:"sha256"`
		Rows     int      `json:"rows"`
		Folds    int      `json:"folds"`
		Seed     int64    `json:"seed"`
		Warnings []string `json:"warnings,omitempty"`
	} `json:"data"`
	Nurse     triage.ModeReport     `json:"nurse"`
	Families  []triage.FamilyReport `json:"families"`
	Chosen    string                `json:"chosen,omitempty"`
	Rationale string                `json:"rationale,omitempty"`
}

func cmdEvalTriage(_ context.Context, e env) error {
	fset := flag.NewFlagSet("eval triage", flag.ContinueOnError)
	data := fset.String("data", "", "KTAS-format file for cross-validation (default: the bundled development rows)")
	modelDir := fset.String("model", "", "score this saved model version (with --test) instead of cross-validating")
	test := fset.String("test", "", "KTAS-format file the model never saw (with --model)")
	families := fset.String("families", "logreg,mlp,gbt", "model families to cross-validate")
	folds := fset.Int("folds", 5, "cross-validation folds")
	bootstrap := fset.Int("bootstrap", 1000, "bootstrap resamples for the 95% intervals")
	asJSON := fset.Bool("json", false, "print the report as JSON")
	dataDir := clinicalDataFlag(fset, e.getenv)
	if err := parseFlags(fset, e); err != nil {
		return err
	}
	if (*modelDir == "") != (*test == "") {
		fmt.Fprintln(e.stderr, "eval triage: --model and --test go together")
		return errUsage
	}
	fsys, feat, err := triageDeps(*dataDir)
	if err != nil {
		return err
	}
	if *modelDir != "" {
		return evalSavedModel(e, fsys, feat, *modelDir, *test, *bootstrap, *asJSON)
	}
	cases, sum, warnings, err := readKTAS(fsys, *data)
	if err != nil {
		return err
	}
	rep, err := crossValidateFamilies(cases, feat, strings.Split(*families, ","), *folds, *bootstrap, e.stderr)
	if err != nil {
		return err
	}
	rep.Data.File, rep.Data.SHA256, rep.Data.Warnings = nonEmpty(*data, "data/"+ktasFile), sum, warnings
	if *asJSON {
		return writeJSON(e.stdout, rep)
	}
	_, err = io.WriteString(e.stdout, markdownReport(rep))
	return err
}

func nonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func crossValidateFamilies(cases []triage.Case, feat *triage.Featurizer, families []string, folds, bootstrap int, progress io.Writer) (*TriageReport, error) {
	rep := &TriageReport{}
	rep.Data.Rows, rep.Data.Folds = len(cases), folds
	ex := triage.Examples(feat, cases)
	dim := feat.Spec().Dim()
	rep.Nurse = triage.Mode("nurse", cases, func(i int) int { return cases[i].Nurse }, nil, bootstrap, 1)
	for _, fam := range families {
		fam = strings.TrimSpace(fam)
		cfg := triage.DefaultTrainConfig(fam)
		rep.Data.Seed = cfg.Seed
		fmt.Fprintf(progress, "cross-validating %s (%d folds)…\n", fam, folds)
		fr, _, err := triage.EvaluateFamily(cases, ex, dim, cfg, folds, cfg.Seed, bootstrap, validate.DefaultGate())
		if err != nil {
			return nil, err
		}
		rep.Families = append(rep.Families, fr)
	}
	rep.Chosen, rep.Rationale = chooseFamily(rep.Families)
	return rep, nil
}

// chooseFamily ships the family whose second-reader mode (the primary
// mode) does best at the gate: passing it; else meeting its safety-critical
// checks (sensitivity, FNR); then the higher safety score; then the higher
// specificity, i.e. fewer false alarms at the same safety.
func chooseFamily(fs []triage.FamilyReport) (string, string) {
	if len(fs) == 0 {
		return "", ""
	}
	critical := func(g *validate.GateResult) bool {
		for _, c := range g.Checks {
			if c.SafetyCritical && !c.Pass {
				return false
			}
		}
		return true
	}
	better := func(a, b triage.FamilyReport) bool {
		ga, gb := a.SecondReader.Gate, b.SecondReader.Gate
		if ga.Pass != gb.Pass {
			return ga.Pass
		}
		if ca, cb := critical(ga), critical(gb); ca != cb {
			return ca
		}
		if ga.SafetyScore != gb.SafetyScore {
			return ga.SafetyScore > gb.SafetyScore
		}
		return a.SecondReader.Metrics.Specificity.Value > b.SecondReader.Metrics.Specificity.Value
	}
	best := 0
	for i := 1; i < len(fs); i++ {
		if better(fs[i], fs[best]) {
			best = i
		}
	}
	b := fs[best]
	why := fmt.Sprintf("%s: second-reader gate %s (safety score %.2f), sensitivity %.3f, specificity %.3f (cross-validated); chosen by gate result, then safety-critical checks, safety score and specificity",
		b.Family, passWord(b.SecondReader.Gate.Pass), b.SecondReader.Gate.SafetyScore, b.SecondReader.Metrics.Sensitivity.Value, b.SecondReader.Metrics.Specificity.Value)
	return b.Family, why
}

func passWord(p bool) string {
	if p {
		return "PASS"
	}
	return "FAIL"
}

func evalSavedModel(e env, fsys fs.FS, feat *triage.Featurizer, dir, test string, bootstrap int, asJSON bool) error {
	art, err := triage.LoadArtifact(dir, feat.Spec())
	if err != nil {
		return err
	}
	cases, sum, _, err := readKTAS(fsys, test)
	if err != nil {
		return err
	}
	as := triage.NewAssessor(feat, art)
	alone, second, probs := make([]int, len(cases)), make([]int, len(cases)), make([][]float64, len(cases))
	for i, c := range cases {
		q := c.Query
		a := as.Assess(q)
		alone[i], probs[i] = a.Acuity, probsOf(a)
		q.NurseAcuity = c.Nurse
		second[i] = as.Assess(q).Acuity
	}
	out := struct {
		Model        triage.Manifest     `json:"model"`
		TestFile     string              `json:"test_file"`
		TestSHA256   string              `json:"test_sha256"`
		Rows         int                 `json:"rows"`
		Nurse        triage.ModeReport   `json:"nurse"`
		Alone        triage.ModeReport   `json:"model_alone"`
		SecondReader triage.ModeReport   `json:"second_reader"`
		Gate         validate.GateResult `json:"gate_second_reader"`
		GateAlone    validate.GateResult `json:"gate_model_alone"`
	}{Model: art.Manifest, TestFile: test, TestSHA256: sum, Rows: len(cases)}
	out.Nurse = triage.Mode("nurse", cases, func(i int) int { return cases[i].Nurse }, nil, bootstrap, 1)
	out.Alone = triage.Mode("model-alone", cases, func(i int) int { return alone[i] }, func(i int) []float64 { return probs[i] }, bootstrap, 1)
	out.SecondReader = triage.Mode("second-reader", cases, func(i int) int { return second[i] }, func(i int) []float64 { return probs[i] }, bootstrap, 1)
	out.Gate = validate.Gate(out.SecondReader.Metrics, art.Manifest.GateConfig, nil)
	out.Gate.Mode = "second-reader"
	out.GateAlone = validate.Gate(out.Alone.Metrics, art.Manifest.GateConfig, nil)
	out.GateAlone.Mode = "model-alone"
	if asJSON {
		return writeJSON(e.stdout, out)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "model %s/%s (%s) on %s (%d rows, never trained on)\n\n", art.Manifest.Name, art.Manifest.Version, art.Manifest.Family, test, len(cases))
	b.WriteString(metricsTable([]triage.ModeReport{out.Nurse, out.Alone, out.SecondReader}))
	fmt.Fprintf(&b, "\ngate (second reader): %s, safety score %.2f, failed: %s\n", passWord(out.Gate.Pass), out.Gate.SafetyScore, strings.Join(out.Gate.Failed, ", "))
	fmt.Fprintf(&b, "gate (model alone):   %s, safety score %.2f, failed: %s\n", passWord(out.GateAlone.Pass), out.GateAlone.SafetyScore, strings.Join(out.GateAlone.Failed, ", "))
	_, err = io.WriteString(e.stdout, b.String())
	return err
}

func probsOf(a triage.Assessment) []float64 {
	p := make([]float64, 5)
	for k := range p {
		p[k] = a.Probabilities[fmt.Sprint(k+1)]
	}
	return p
}

func fmtIv(iv validate.Interval) string {
	return fmt.Sprintf("%.3f (%.3f–%.3f)", iv.Value, iv.Lo, iv.Hi)
}

func metricsTable(modes []triage.ModeReport) string {
	var b strings.Builder
	b.WriteString("| mode | sensitivity 1–3 | specificity 1–3 | FNR | binary accuracy | exact accuracy | under-triage | over-triage | weighted kappa | sensitivity 1–2 | Brier | ECE |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, m := range modes {
		x := m.Metrics
		brier, ece := "—", "—"
		if x.Brier != nil {
			brier = fmt.Sprintf("%.3f", x.Brier.Value)
		}
		if x.ECE != nil {
			ece = fmt.Sprintf("%.3f", x.ECE.Value)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", m.Mode, fmtIv(x.Sensitivity), fmtIv(x.Specificity),
			fmtIv(x.FNR), fmtIv(x.Accuracy), fmtIv(x.ExactAccuracy), fmtIv(x.UnderTriage), fmtIv(x.OverTriage), fmtIv(x.WeightedKappa),
			fmtIv(x.Sensitivity12), brier, ece)
	}
	return b.String()
}

func confusionTable(name string, c [5][5]int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (rows expert 1–5, columns predicted 1–5):\n```\n", name)
	for i := range 5 {
		fmt.Fprintf(&b, "%d: %4d %4d %4d %4d %4d\n", i+1, c[i][0], c[i][1], c[i][2], c[i][3], c[i][4])
	}
	b.WriteString("```\n")
	return b.String()
}

func markdownReport(rep *TriageReport) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Triage validation report\n\nData: %s (%d rows, sha256 %s), stratified %d-fold cross-validation, seed %d. Every model figure is out-of-fold: each row is answered by a model (and a decision policy) fitted without it. 95%% bootstrap intervals.\n\n",
		rep.Data.File, rep.Data.Rows, rep.Data.SHA256, rep.Data.Folds, rep.Data.Seed)
	modes := []triage.ModeReport{rep.Nurse}
	for _, f := range rep.Families {
		a, s := f.Alone, f.SecondReader
		a.Mode, s.Mode = f.Family+" alone", "nurse + "+f.Family
		modes = append(modes, a, s)
	}
	b.WriteString(metricsTable(modes))
	b.WriteString("\n## Gate (SPEC section 6; primary mode: second reader)\n\n| family | mode | pass | safety score | failed checks | below-floor answers |\n|---|---|---|---|---|---|\n")
	for _, f := range rep.Families {
		for _, m := range []triage.ModeReport{f.SecondReader, f.Alone} {
			fmt.Fprintf(&b, "| %s | %s | %s | %.2f | %s | %d |\n", f.Family, m.Mode, passWord(m.Gate.Pass), m.Gate.SafetyScore, strings.Join(m.Gate.Failed, ", "), f.BelowFloor)
		}
	}
	if rep.Chosen != "" {
		fmt.Fprintf(&b, "\nShipped family: %s\n", rep.Rationale)
	}
	b.WriteString("\n## Confusion matrices\n\n")
	b.WriteString(confusionTable("nurse", rep.Nurse.Metrics.Confusion))
	for _, f := range rep.Families {
		b.WriteString(confusionTable(f.Family+" alone", f.Alone.Metrics.Confusion))
		b.WriteString(confusionTable("nurse + "+f.Family, f.SecondReader.Metrics.Confusion))
	}
	b.WriteString("\n## Subgroups (sensitivity / specificity / under-triage, n)\n\n")
	for _, f := range rep.Families {
		if f.Family != rep.Chosen {
			continue
		}
		for _, m := range []triage.ModeReport{rep.Nurse, f.SecondReader, f.Alone} {
			fmt.Fprintf(&b, "### %s\n\n| group | label | n | sensitivity | specificity | under-triage |\n|---|---|---|---|---|---|\n", m.Mode)
			groups := make([]string, 0, len(m.Subgroups))
			for g := range m.Subgroups {
				groups = append(groups, g)
			}
			sort.Strings(groups)
			for _, g := range groups {
				labels := make([]string, 0, len(m.Subgroups[g]))
				for l := range m.Subgroups[g] {
					labels = append(labels, l)
				}
				sort.Strings(labels)
				for _, l := range labels {
					x := m.Subgroups[g][l]
					fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s |\n", g, l, x.N, fmtIv(x.Sensitivity), fmtIv(x.Specificity), fmtIv(x.UnderTriage))
				}
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func cmdTrain(_ context.Context, e env) error {
	if len(e.args) == 0 || e.args[0] != "triage" {
		fmt.Fprintln(e.stderr, "Usage: medserve train triage [--family F] [--version V] [--models DIR]")
		return errUsage
	}
	e.args = e.args[1:]
	fset := flag.NewFlagSet("train triage", flag.ContinueOnError)
	family := fset.String("family", "", "model family to ship (default: the best second-reader family under cross-validation)")
	families := fset.String("families", "logreg,mlp,gbt", "families to cross-validate for the report")
	version := fset.String("version", "1", "model version to write")
	data := fset.String("data", "", "KTAS-format training file (default: the bundled development rows)")
	folds := fset.Int("folds", 5, "cross-validation folds for the report")
	bootstrap := fset.Int("bootstrap", 1000, "bootstrap resamples")
	models := modelsFlag(fset, e.getenv)
	dataDir := clinicalDataFlag(fset, e.getenv)
	if err := parseFlags(fset, e); err != nil {
		return err
	}
	fsys, feat, err := triageDeps(*dataDir)
	if err != nil {
		return err
	}
	cases, sum, warnings, err := readKTAS(fsys, *data)
	if err != nil {
		return err
	}
	rep, err := crossValidateFamilies(cases, feat, strings.Split(*families, ","), *folds, *bootstrap, e.stderr)
	if err != nil {
		return err
	}
	rep.Data.File, rep.Data.SHA256, rep.Data.Warnings = nonEmpty(*data, "data/"+ktasFile), sum, warnings
	ship := *family
	if ship == "" {
		ship = rep.Chosen
	}
	var fr *triage.FamilyReport
	for i := range rep.Families {
		if rep.Families[i].Family == ship {
			fr = &rep.Families[i]
		}
	}
	if fr == nil {
		return fmt.Errorf("train triage: family %q was not cross-validated (have %s)", ship, *families)
	}
	cfg := triage.DefaultTrainConfig(ship)
	ex := triage.Examples(feat, cases)
	fmt.Fprintf(e.stderr, "training %s on all %d rows…\n", ship, len(ex))
	tr, err := triage.Fit(ex, feat.Spec().Dim(), cfg)
	if err != nil {
		return err
	}
	gate := *fr.SecondReader.Gate
	man := triage.Manifest{
		Name: "triage", Version: *version, Family: ship, Features: feat.Spec(), Labels: []string{"1", "2", "3", "4", "5"},
		Policy: tr.Policy, Train: cfg, DataSHA256: sum, DataRows: len(cases), Gate: &gate, GateConfig: validate.DefaultGate(),
		Validation: map[string]any{
			"method":        fmt.Sprintf("stratified %d-fold cross-validation on %s", *folds, rep.Data.File),
			"second_reader": fr.SecondReader.Metrics, "model_alone": fr.Alone.Metrics, "nurse": rep.Nurse.Metrics,
			"gate_model_alone": fr.Alone.Gate,
		},
	}
	jr, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Join(*models, "triage", *version)
	if err := triage.SaveArtifact(dir, man, tr.Model, map[string][]byte{"report.md": []byte(markdownReport(rep)), "report.json": append(jr, '\n')}); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s (%s; second-reader gate %s)\n", dir, ship, passWord(gate.Pass))
	return nil
}

// triageFlags are the vital-sign and context flags of `medserve triage`.
type triageFlags struct {
	age, sbp, dbp, hr, rr, temp, spo2, gcs, pain float64
	sex, avpu, arrival                           string
	injury                                       bool
	nurse                                        int
}

func cmdTriage(ctx context.Context, e env) error {
	fset := flag.NewFlagSet("triage", flag.ContinueOnError)
	var tf triageFlags
	nan := math.NaN()
	for _, v := range []struct {
		p    *float64
		name string
	}{{&tf.age, "age"}, {&tf.sbp, "sbp"}, {&tf.dbp, "dbp"}, {&tf.hr, "hr"}, {&tf.rr, "rr"}, {&tf.temp, "temp-c"}, {&tf.spo2, "spo2"}, {&tf.gcs, "gcs"}, {&tf.pain, "pain"}} {
		fset.Float64Var(v.p, v.name, nan, v.name)
	}
	fset.StringVar(&tf.sex, "sex", "", "female|male|other|unknown")
	fset.StringVar(&tf.avpu, "avpu", "", "alert|verbal|pain|unresponsive")
	fset.StringVar(&tf.arrival, "arrival", "", "walk-in|ambulance|private-vehicle|other")
	fset.BoolVar(&tf.injury, "injury", false, "the presentation is an injury")
	fset.IntVar(&tf.nurse, "nurse-acuity", 0, "the triage nurse's level 1–5 (second-reader mode)")
	asJSON := fset.Bool("json", false, "print the assessment as JSON")
	jsonl := fset.Bool("jsonl", false, "read POST /api/v1/inference request bodies, one per line, from stdin")
	modelDir := fset.String("model", "", "model version directory (default: the newest under --models/triage)")
	models := modelsFlag(fset, e.getenv)
	dataDir := clinicalDataFlag(fset, e.getenv)
	if err := parseFlags(fset, e); err != nil {
		return err
	}
	if !*jsonl && fset.NArg() == 0 {
		fmt.Fprintln(e.stderr, "Usage: medserve triage [--json] [--age N] [--sex S] [--sbp N --dbp N --hr N --rr N --temp-c X --spo2 N --gcs N --pain N] [--avpu A] [--arrival M] [--injury] [--nurse-acuity N] TEXT\n       medserve triage --jsonl < requests.jsonl")
		return errUsage
	}
	_, feat, err := triageDeps(*dataDir)
	if err != nil {
		return err
	}
	dir := *modelDir
	if dir == "" {
		if dir, err = newestVersion(filepath.Join(*models, "triage")); err != nil {
			return err
		}
	}
	art, err := triage.LoadArtifact(dir, feat.Spec())
	if err != nil {
		return err
	}
	as := triage.NewAssessor(feat, art)
	if *jsonl {
		return triageJSONL(ctx, as, e.stdin, e.stdout)
	}
	req := pipeline.Request{Query: strings.Join(fset.Args(), " ")}
	opt := func(v float64) *float64 {
		if math.IsNaN(v) {
			return nil
		}
		return &v
	}
	req.Patient.Age, req.Patient.Sex = opt(tf.age), tf.sex
	req.Vitals.Vitals = clinical.Vitals{SBP: opt(tf.sbp), DBP: opt(tf.dbp), HR: opt(tf.hr), RR: opt(tf.rr), TempC: opt(tf.temp), SpO2: opt(tf.spo2), GCS: opt(tf.gcs), Pain: opt(tf.pain)}
	req.Vitals.AVPU = tf.avpu
	req.Context.ArrivalMode = tf.arrival
	if tf.injury {
		t := true
		req.Context.Injury = &t
	}
	req.Context.NurseAcuity = tf.nurse
	if p := req.Problems(); len(p) > 0 {
		for _, line := range pipeline.ProblemList(p) {
			fmt.Fprintln(e.stderr, "triage:", line)
		}
		return errUsage
	}
	a := as.Assess(req.ClinicalQuery())
	if *asJSON {
		return writeJSON(e.stdout, a)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "acuity %d (%s)   model %s/%s %s: level %d   probabilities %v\n", a.Acuity, a.Urgency, a.Model.Name, a.Model.Version, a.Model.Family, a.ModelAcuity, a.Probabilities)
	fmt.Fprintf(&b, "safety floor %d: %s\n", a.SafetyFloor.Acuity, strings.Join(a.SafetyFloor.Reasons, "; "))
	fmt.Fprintf(&b, "scores: NEWS2 %d (%d params), qSOFA %d, shock index %.2f\n", a.Scores.NEWS2, a.Scores.NEWS2Params, a.Scores.QSOFA, a.Scores.ShockIndex)
	if a.ReviewRequired {
		fmt.Fprintf(&b, "REVIEW REQUIRED: %s\n", strings.Join(a.ReviewReasons, "; "))
	}
	for _, f := range a.Findings {
		fmt.Fprintf(&b, "  %-9s %-24q %s\n", f.Type, f.Text, f.Name)
	}
	_, err = io.WriteString(e.stdout, b.String())
	return err
}

// newestVersion returns the highest-numbered version directory.
func newestVersion(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("no model versions in %s: %w (run \"medserve train triage\")", dir, err)
	}
	best, bestN := "", -1
	for _, en := range entries {
		var n int
		// Optimised variants (optimize.json) are candidates until promoted.
		if _, err := os.Stat(filepath.Join(dir, en.Name(), "optimize.json")); err == nil {
			continue
		}
		if _, err := fmt.Sscanf(en.Name(), "%d", &n); err == nil && en.IsDir() && n > bestN {
			best, bestN = en.Name(), n
		}
	}
	if best == "" {
		return "", fmt.Errorf("no model versions in %s (run \"medserve train triage\")", dir)
	}
	return filepath.Join(dir, best), nil
}

// triageJSONL answers one API request body per line.
func triageJSONL(ctx context.Context, as *triage.Assessor, in io.Reader, out io.Writer) error {
	return jsonLines(ctx, in, out, func(raw []byte) (any, []string) {
		var req pipeline.Request
		if err := decodeStrict(raw, &req); err != nil {
			return nil, []string{err.Error()}
		}
		if p := req.Problems(); len(p) > 0 {
			return nil, pipeline.ProblemList(p)
		}
		return as.Assess(req.ClinicalQuery()), nil
	})
}
