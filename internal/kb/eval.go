package kb

import (
	"encoding/csv"
	"io/fs"
	"sort"
	"strings"

	"medserve/internal/clinical"
)

// Rate is a count of hits among cases.
type Rate struct {
	Hit  int     `json:"hit"`
	N    int     `json:"n"`
	Rate float64 `json:"rate"`
}

func (r *Rate) add(hit bool) {
	r.N++
	if hit {
		r.Hit++
	}
	r.Rate = float64(r.Hit) / float64(r.N)
}

// PriorityItem is the result for one item of the high-priority list.
type PriorityItem struct {
	Item     string   `json:"item"`
	Rules    string   `json:"rules"`
	Effect   string   `json:"effect"`
	Pairs    Rate     `json:"member_pairs"` // every member of one side against every member of the other
	Detected bool     `json:"detected"`     // all member pairs alert at major or above
	Example  string   `json:"example"`
	Missed   []string `json:"missed,omitempty"`
}

// InteractionEval is the report of `medserve eval interactions`.
type InteractionEval struct {
	// PositivesNote says why the sensitivity below is not evidence.
	PositivesNote   string          `json:"positives_note"`
	Sensitivity     Rate            `json:"sensitivity_positive_pairs"`
	BySource        map[string]Rate `json:"sensitivity_by_source"`
	BySeverity      map[string]Rate `json:"sensitivity_by_severity"`
	Specificity     Rate            `json:"specificity_negative_pairs"`
	NegativeAlerts  []string        `json:"negative_pairs_alerted,omitempty"`
	HighPriority    []PriorityItem  `json:"high_priority"`
	HighPriorityHit int             `json:"high_priority_detected"`
	HighPriorityN   int             `json:"high_priority_items"`
}

// EvalInteractions scores the checker: sensitivity on CRESCENDDI's positive
// controls (by distinct pair, through the same name resolution a request
// takes), specificity on its negative controls, and the high-priority list
// item by item on every member pair of its classes.
func (k *KB) EvalInteractions() InteractionEval {
	d := k.drugs
	ev := InteractionEval{
		PositivesNote: "The positive controls are also the checker's knowledge source, so sensitivity on them shows only that they were loaded; " +
			"the independent figures are specificity on the negative controls (which share no pair with the positives) and the high-priority list on member drugs.",
		BySource: map[string]Rate{}, BySeverity: map[string]Rate{},
	}
	for i, p := range d.positives {
		hit := len(k.CheckInteractions([]string{p[0], p[1]}).Interactions) > 0
		ev.Sensitivity.add(hit)
		bs := ev.BySource[d.posSource[i]]
		bs.add(hit)
		ev.BySource[d.posSource[i]] = bs
		sv := ev.BySeverity[d.posSev[i].String()]
		sv.add(hit)
		ev.BySeverity[d.posSev[i].String()] = sv
	}
	seen := map[[2]string]bool{}
	for _, p := range d.negatives {
		key := [2]string{min(p[0], p[1]), max(p[0], p[1])}
		if seen[key] {
			continue
		}
		seen[key] = true
		rep := k.CheckInteractions([]string{p[0], p[1]})
		alerted := len(rep.Interactions) > 0
		ev.Specificity.add(!alerted)
		if alerted {
			a := rep.Interactions[0]
			ev.NegativeAlerts = append(ev.NegativeAlerts, a.Drugs[0]+" + "+a.Drugs[1]+" ("+a.Severity+": "+a.Source+")")
		}
	}

	items := map[string][]int{}
	var order []string
	for i, r := range d.rules {
		if r.List != "phansalkar2012" {
			continue
		}
		item := priorityItem(r.ID)
		if _, ok := items[item]; !ok {
			order = append(order, item)
		}
		items[item] = append(items[item], i)
	}
	sort.Strings(order)
	for _, item := range order {
		pi := PriorityItem{Item: item, Detected: true}
		var ids []string
		for _, ri := range items[item] {
			r := d.rules[ri]
			ids = append(ids, r.ID)
			pi.Effect = r.Effect
			as, _ := d.members(r.A)
			bs, _ := d.members(r.B)
			for _, a := range as {
				for _, b := range bs {
					if a == b {
						continue
					}
					rep := k.CheckInteractions([]string{d.generics[a], d.generics[b]})
					hit := len(rep.Interactions) > 0 && rep.Interactions[0].sev >= SevMajor
					pi.Pairs.add(hit)
					if pi.Example == "" && hit {
						pi.Example = d.generics[a] + " + " + d.generics[b]
					}
					if !hit {
						pi.Detected = false
						if len(pi.Missed) < 5 {
							pi.Missed = append(pi.Missed, d.generics[a]+" + "+d.generics[b])
						}
					}
				}
			}
		}
		pi.Rules = strings.Join(ids, ",")
		if pi.Pairs.N == 0 {
			pi.Detected = false
		}
		ev.HighPriority = append(ev.HighPriority, pi)
		if pi.Detected {
			ev.HighPriorityHit++
		}
	}
	ev.HighPriorityN = len(order)
	return ev
}

// priorityItem groups rule ids "P11a", "P11b" into list item "P11".
func priorityItem(id string) string {
	return strings.TrimRight(id, "abcdefghijklmnopqrstuvwxyz")
}

// Analyzer turns text into findings (the text engine, in production).
type Analyzer func(text string) []clinical.Finding

// DifferentialEval is the plumbing check on authored sets.
type DifferentialEval struct {
	Note     string          `json:"note"`
	Datasets map[string]Rate `json:"top1_by_dataset"`
	Top3     map[string]Rate `json:"top3_by_dataset"`
	ByLabel  map[string]Rate `json:"top1_by_label"`
	Unmapped int             `json:"rows_without_ddxplus_condition"`
	NoOutput int             `json:"rows_with_empty_differential"`
}

const filePlumbing = "kb/plumbing-labels.tsv"

// EvalDifferential runs the authored texts of Symptom2Disease and the
// Disease-Symptom-Prediction rows (symptom lists, made into text) through
// the analyzer and the differential, for the labels that map to a DDXPlus
// condition. It checks the plumbing, not clinical quality.
func (k *KB) EvalDifferential(fsys fs.FS, analyze Analyzer) (DifferentialEval, error) {
	ev := DifferentialEval{
		Note:     "PLUMBING CHECK, NOT CLINICAL: authored or generated texts over a few of the 49 conditions; near-100% figures in the literature on these sets mean nothing clinically.",
		Datasets: map[string]Rate{}, Top3: map[string]Rate{}, ByLabel: map[string]Rate{},
	}
	labels := map[[2]string]string{}
	if err := readTable(fsys, filePlumbing, '\t', []string{"dataset", "label", "condition"}, func(r row) error {
		labels[[2]string{r.get("dataset"), r.get("label")}] = r.get("condition")
		return nil
	}); err != nil {
		return ev, err
	}
	nameOf := map[string]string{}
	for _, c := range k.conditions {
		nameOf[c.Key] = c.Name
	}
	score := func(dataset, label, text string) {
		key, ok := labels[[2]string{dataset, label}]
		if !ok {
			ev.Unmapped++
			return
		}
		want := nameOf[key]
		cands := k.Differential(analyze(text), Patient{}, 3)
		if len(cands) == 0 {
			ev.NoOutput++
		}
		top1 := len(cands) > 0 && cands[0].Condition == want
		top3 := false
		for i := 0; i < len(cands) && i < 3; i++ {
			top3 = top3 || cands[i].Condition == want
		}
		r := ev.Datasets[dataset]
		r.add(top1)
		ev.Datasets[dataset] = r
		r3 := ev.Top3[dataset]
		r3.add(top3)
		ev.Top3[dataset] = r3
		rl := ev.ByLabel[dataset+": "+label]
		rl.add(top1)
		ev.ByLabel[dataset+": "+label] = rl
	}
	seen := map[string]bool{}
	if err := readTable(fsys, "symptom2disease/Symptom2Disease.csv", ',', []string{"label", "text"}, func(r row) error {
		if t := r.get("text"); !seen[t] { // the set holds 47 duplicate texts
			seen[t] = true
			score("symptom2disease", r.get("label"), t)
		}
		return nil
	}); err != nil {
		return ev, err
	}
	// Disease-Symptom-Prediction: 4,920 rows but ~304 distinct symptom sets;
	// each distinct set is scored once.
	f, err := fsys.Open("disease-symptom-prediction/dataset.csv")
	if err != nil {
		return ev, err
	}
	defer f.Close()
	cr := csv.NewReader(f)
	cr.FieldsPerRecord = -1
	recs, err := cr.ReadAll()
	if err != nil {
		return ev, err
	}
	for _, rec := range recs {
		if len(rec) < 2 || strings.TrimSpace(rec[0]) == "" {
			continue
		}
		var syms []string
		for _, s := range rec[1:] {
			if s = strings.TrimSpace(strings.ReplaceAll(s, "_", " ")); s != "" {
				syms = append(syms, strings.Join(strings.Fields(s), " "))
			}
		}
		text := strings.Join(syms, ", ")
		key := rec[0] + "|" + text
		if seen[key] {
			continue
		}
		seen[key] = true
		score("disease-symptom-prediction", strings.TrimSpace(rec[0]), text)
	}
	return ev, nil
}
