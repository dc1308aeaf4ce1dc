package triage

import (
	"io/fs"
	"strings"
	"testing"

	"medserve"
	"medserve/internal/clinical"
)

func fp(v float64) *float64 { return &v }

func TestNEWS2(t *testing.T) {
	tests := []struct {
		name   string
		q      clinical.Query
		news2  int
		params int
		red    bool
		qsofa  int
	}{
		{"normal adult", clinical.Query{AVPU: "alert", Vitals: clinical.Vitals{RR: fp(16), SpO2: fp(98), SBP: fp(120), HR: fp(75), TempC: fp(37)}}, 0, 6, false, 0},
		// RR 24→2, SpO2 93→2, SBP 88→3, HR 118→2, T 37.1→0, alert→0 = 9
		{"SPEC example", clinical.Query{AVPU: "alert", Vitals: clinical.Vitals{RR: fp(24), SpO2: fp(93), SBP: fp(88), HR: fp(118), TempC: fp(37.1)}}, 9, 6, true, 2},
		{"confused", clinical.Query{AVPU: "verbal", Vitals: clinical.Vitals{RR: fp(8), HR: fp(40), TempC: fp(39.5)}}, 3 + 3 + 2 + 3, 4, true, 1},
		{"nothing measured", clinical.Query{}, 0, 0, false, 0},
		{"GCS 14 is altered", clinical.Query{Vitals: clinical.Vitals{GCS: fp(14)}}, 3, 1, true, 1},
	}
	for _, tt := range tests {
		s := ComputeScores(tt.q)
		if s.NEWS2 != tt.news2 || s.NEWS2Params != tt.params || s.NEWS2Red != tt.red || s.QSOFA != tt.qsofa {
			t.Errorf("%s: got NEWS2 %d (%d params, red %v) qSOFA %d; want %d (%d, %v) %d", tt.name, s.NEWS2, s.NEWS2Params, s.NEWS2Red, s.QSOFA, tt.news2, tt.params, tt.red, tt.qsofa)
		}
	}
	s := ComputeScores(clinical.Query{Vitals: clinical.Vitals{HR: fp(118), SBP: fp(88)}})
	if s.ShockIndex != 1.34 {
		t.Errorf("shock index %v, want 1.34", s.ShockIndex)
	}
}

func TestDangerZoneIsAgeAdjusted(t *testing.T) {
	adult := ComputeScores(clinical.Query{Age: fp(30), Vitals: clinical.Vitals{HR: fp(130), RR: fp(30)}})
	toddler := ComputeScores(clinical.Query{Age: fp(2), Vitals: clinical.Vitals{HR: fp(130), RR: fp(30)}})
	if !adult.DangerHR || !adult.DangerRR || toddler.DangerHR || toddler.DangerRR {
		t.Errorf("adult %+v toddler %+v", adult, toddler)
	}
}

func loadRules(t testing.TB) *Rules {
	t.Helper()
	b, err := fs.ReadFile(medserve.Data, "data/triage/safety-floor.tsv")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ParseRules(strings.NewReader(string(b)), "safety-floor.tsv")
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestSafetyFloor(t *testing.T) {
	rs := loadRules(t)
	tests := []struct {
		name     string
		in       Input
		acuity   int
		wantRule string
	}{
		{"unresponsive", Input{Query: clinical.Query{AVPU: "unresponsive"}}, 1, "F01"},
		{"GCS 7", Input{Query: clinical.Query{Vitals: clinical.Vitals{GCS: fp(7)}}}, 1, "F02"},
		{"SBP 85", Input{Query: clinical.Query{Vitals: clinical.Vitals{SBP: fp(85)}}}, 2, "F07"},
		{"stroke signs", Input{Affirmed: map[string]bool{"facial_palsy": true}}, 2, "F10"},
		{"chest pain, stable", Input{Affirmed: map[string]bool{"chest_pain": true}, Query: clinical.Query{Vitals: clinical.Vitals{HR: fp(80), SBP: fp(130)}}}, 5, ""},
		{"chest pain, tachycardic", Input{Affirmed: map[string]bool{"chest_pain": true}, Query: clinical.Query{Vitals: clinical.Vitals{HR: fp(130)}}, Scores: Scores{DangerHR: true}}, 2, "F12"},
		{"NEWS2 7", Input{Scores: Scores{NEWS2: 7, NEWS2Params: 6}}, 2, "F05"},
		{"febrile infant", Input{Query: clinical.Query{Age: fp(0.1), Vitals: clinical.Vitals{TempC: fp(38.2)}}}, 2, "F23"},
		{"missing vitals fire nothing", Input{}, 5, ""},
	}
	for _, tt := range tests {
		fl := rs.Apply(tt.in)
		if fl.Acuity != tt.acuity {
			t.Errorf("%s: floor %d, want %d (rules %v)", tt.name, fl.Acuity, tt.acuity, fl.Rules)
		}
		if tt.wantRule != "" && !containsString(fl.Rules, tt.wantRule) {
			t.Errorf("%s: rules %v lack %s", tt.name, fl.Rules, tt.wantRule)
		}
		if len(fl.Rules) != len(fl.Reasons) {
			t.Errorf("%s: %d rules, %d reasons", tt.name, len(fl.Rules), len(fl.Reasons))
		}
	}
}

func containsString(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func TestParseRulesErrors(t *testing.T) {
	head := "id\twhen\tmax_acuity\treason\tsource\n"
	for _, body := range []string{
		"X1\tbogus>3\t2\tr\ts\n",
		"X1\tsbp<\t2\tr\ts\n",
		"X1\tsbp<90\t7\tr\ts\n",
		"X1\tavpu=sleepy\t2\tr\ts\n",
		"X1\tsbp<90\t2\tr\n",
		"X1\tsbp<90\t2\tr\t\n",
		"X1\tsbp<90\t2\tr\ts\nX1\thr>100\t3\tr\ts\n",
	} {
		if _, err := ParseRules(strings.NewReader(head+body), "t"); err == nil {
			t.Errorf("accepted %q", body)
		} else if !strings.Contains(err.Error(), "t:") {
			t.Errorf("error %q does not name the file and line", err)
		}
	}
}

func FuzzParseRules(f *testing.F) {
	f.Add("id\twhen\tmax_acuity\treason\tsource\nF1\tsbp<90 & finding=a|b\t2\tr\ts\n")
	f.Add("id\twhen\tmax_acuity\treason\tsource\nF1\tavpu=pain|verbal & flag=news2_red\t1\tr\ts\n")
	f.Fuzz(func(t *testing.T, in string) {
		rs, err := ParseRules(strings.NewReader(in), "fuzz")
		if err != nil {
			return
		}
		fl := rs.Apply(Input{Query: clinical.Query{AVPU: "pain", Vitals: clinical.Vitals{SBP: fp(80)}}, Affirmed: map[string]bool{"a": true}})
		if fl.Acuity < 1 || fl.Acuity > 5 {
			t.Fatalf("floor %d", fl.Acuity)
		}
	})
}

func TestParseKTAS(t *testing.T) {
	raw, err := fs.ReadFile(medserve.Data, "data/ktas-triage/data.csv")
	if err != nil {
		t.Fatal(err)
	}
	cases, warnings, err := ParseKTAS(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) != 1014 {
		t.Fatalf("%d cases, want 1014", len(cases))
	}
	var nurseUnder, spo2Site1, female, injured, unresponsive int
	for _, c := range cases {
		if c.Nurse > c.Expert {
			nurseUnder++
		}
		if c.Site == "1" && c.Query.Vitals.SpO2 != nil {
			spo2Site1++
		}
		if c.Query.Sex == clinical.SexFemale {
			female++
		}
		if c.Query.Injury != nil && *c.Query.Injury {
			injured++
		}
		if c.Query.AVPU == clinical.AVPUUnresponsive {
			unresponsive++
		}
	}
	if spo2Site1 != 0 || female != 492 || injured != 194 || unresponsive != 9 {
		t.Errorf("spo2 at site 1 %d, female %d, injured %d, unresponsive %d", spo2Site1, female, injured, unresponsive)
	}
	t.Logf("nurse under-triage rows %d, warnings %d", nurseUnder, len(warnings))
}

func TestParseKTASRejectsBadRows(t *testing.T) {
	head := "Group;Sex;Age;Arrival mode;Injury;Chief_complain;Mental;Pain;NRS_pain;SBP;DBP;HR;RR;BT;Saturation;KTAS_RN;KTAS_expert\n"
	if _, _, err := ParseKTAS(strings.NewReader(head + "1;1;50;1;1;cough;1;0;#BOÞ!;120;80;80;20;36,5;??;3;9\n")); err == nil {
		t.Error("acuity 9 accepted")
	}
	cases, warn, err := ParseKTAS(strings.NewReader(head + "1;1;50;1;1;cough;1;1;5;120;80;900;20;36,5;??;3;3\n"))
	if err != nil || len(cases) != 1 || cases[0].Query.Vitals.HR != nil || len(warn) != 1 || *cases[0].Query.Vitals.TempC != 36.5 {
		t.Errorf("HR 900 must become missing with a warning; decimal comma read: %v %+v %v", err, cases, warn)
	}
	if _, _, err := ParseKTAS(strings.NewReader("a;b\n1;2\n")); err == nil {
		t.Error("missing columns accepted")
	}
}
