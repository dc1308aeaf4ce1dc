package text

import (
	"math"
	"strconv"

	"medserve/internal/clinical"
)

// VitalsResult is what ExtractVitals finds in a text.
type VitalsResult struct {
	Vitals      clinical.Vitals
	Quantities  []clinical.Quantity
	Implausible []clinical.Implausible
}

// ExtractVitals finds vital signs and quantities in free clinical text.
//
// The first plausible occurrence of each vital sign wins: a note lists the
// admission (triage) vitals first, and those are what urgency is judged on;
// later repeats are usually reassessments after treatment. A blood-pressure
// pair is accepted or rejected as a whole. Values outside physiological limits
// never reach Vitals; they are listed in Implausible, every time they occur.
//
// The text is read once, left to right, by a hand-written tokenizer with a
// fixed look-around window, so time is linear in len(s) and memory is constant
// apart from the results.
func ExtractVitals(s string) VitalsResult {
	x := vitalsScanner{s: s}
	x.run()
	return x.result()
}

// vfield indexes the vital signs in clinical.Vitals order.
type vfield uint8

const (
	fSBP vfield = iota
	fDBP
	fHR
	fRR
	fTemp
	fSpO2
	fGCS
	fPain
	nVitalFields
)

// vitalBound holds the inclusive physiological bounds of one field; text is
// preformatted so that a rejection costs a single string concatenation.
type vitalBound struct {
	name   string
	lo, hi float64
	text   string
}

var vitalLimits = [nVitalFields]vitalBound{
	fSBP:  {"sbp", 0, 300, "0–300"},
	fDBP:  {"dbp", 0, 200, "0–200"},
	fHR:   {"hr", 0, 300, "0–300"},
	fRR:   {"rr", 0, 80, "0–80"},
	fTemp: {"temp_c", 25, 45, "25–45"},
	fSpO2: {"spo2", 0, 100, "0–100"},
	fGCS:  {"gcs", 3, 15, "3–15"},
	fPain: {"pain", 0, 10, "0–10"},
}

const (
	maxAgeYears = 125
	// maxVitalNumLen bounds what is handed to strconv: no clinical value needs more
	// digits, and it keeps every parsed value far from ±Inf after unit
	// conversion.
	maxVitalNumLen = 32
	// maxVitalFillers bounds the words skipped between a keyword and its value so
	// that look-ahead, and therefore the ring below, stays small.
	maxVitalFillers = 4
	// vitalsRing must exceed the longest look-ahead plus look-behind of any
	// pattern (about 25 tokens); a power of two keeps the modulo cheap.
	vitalsRing = 64
	// maxVitalWordLen is the longest entry in vitalWords.
	maxVitalWordLen = 13
)

type vtokKind uint8

const (
	vtEOF vtokKind = iota // also stands for "before the window": nothing there
	vtWord
	vtNum
	vtPunct
	vtDeg // a degree sign, which is multi-byte UTF-8
)

type vtoken struct {
	start, end int
	kind       vtokKind
	w          vword // keyword identity of a vtWord, wNone if not a keyword
	c          byte  // the character of a vtPunct; 'e' on a vtNum in exponent form
	gap        bool  // whitespace or an unknown byte precedes the token
}

// vword identifies a keyword. Several spellings share one word, and one
// spelling may play two roles ("hr" is heart rate before a number and hours
// after one), resolved by position.
type vword uint8

const (
	wNone vword = iota
	wFiller
	wOf
	wBP
	wB
	wP
	wBlood
	wPressure
	wSBP
	wDBP
	wMmHg
	wMm
	wHg
	wHR
	wHeart
	wRate
	wPulse
	wOx
	wBPM
	wBeats
	wPer
	wMin
	wRR
	wResp
	wRespiratory
	wR
	wBreaths
	wT
	wTemp
	wMax
	wC
	wF
	wDegWord
	wSpO
	wO
	wSat
	wOxygen
	wOn
	wRA
	wRoom
	wO2Dev
	wL
	wGCS
	wGlasgow
	wComa
	wScale
	wE
	wV
	wM
	wPain
	wNRS
	wOut
	wAge
	wYO
	wY
	wOld
	wYear
	wMonth
	wWeek
	wDay
	wHour
	wMg
	wMcg
	wG
	wML
	wUnit
	wMEq
	wX
	wQ
	wEvery
)

// vitalWords is read-only after package initialisation.
var vitalWords = map[string]vword{
	"was": wFiller, "is": wFiller, "at": wFiller, "now": wFiller,
	"approx": wFiller, "approximately": wFiller, "about": wFiller, "around": wFiller,
	"of": wOf,
	"bp": wBP, "nibp": wBP, "b": wB, "p": wP,
	"blood": wBlood, "pressure": wPressure, "sbp": wSBP, "dbp": wDBP,
	"mmhg": wMmHg, "mm": wMm, "hg": wHg,
	"hr": wHR, "heartrate": wHR, "heart": wHeart, "rate": wRate, "pulse": wPulse,
	"ox": wOx, "oximetry": wOx, "oximeter": wOx,
	"bpm": wBPM, "beats": wBeats, "per": wPer,
	"min": wMin, "mins": wMin, "minute": wMin, "minutes": wMin,
	"rr": wRR, "resp": wResp, "resps": wResp, "respiration": wResp, "respirations": wResp,
	"respiratory": wRespiratory, "r": wR, "breaths": wBreaths, "breath": wBreaths,
	"t": wT, "temp": wTemp, "temps": wTemp, "temperature": wTemp, "tmax": wTemp, "max": wMax,
	"c": wC, "celsius": wC, "centigrade": wC, "f": wF, "fahrenheit": wF,
	"deg": wDegWord, "degree": wDegWord, "degrees": wDegWord,
	"spo": wSpO, "sao": wSpO, "sp": wSpO, "sa": wSpO, "o": wO,
	"sat": wSat, "sats": wSat, "saturation": wSat, "saturations": wSat,
	"saturating": wSat, "satting": wSat, "sating": wSat,
	"oxygen": wOxygen, "on": wOn, "ra": wRA, "room": wRoom,
	"nc": wO2Dev, "nrb": wO2Dev, "bipap": wO2Dev, "cpap": wO2Dev, "hfnc": wO2Dev,
	"mask": wO2Dev, "vent": wO2Dev, "ventilator": wO2Dev, "nasal": wO2Dev,
	"l": wL, "lpm": wL, "liter": wL, "liters": wL, "litre": wL, "litres": wL,
	"gcs": wGCS, "glasgow": wGlasgow, "coma": wComa,
	"score": wScale, "scale": wScale, "level": wScale, "rating": wScale,
	"e": wE, "v": wV, "m": wM,
	"pain": wPain, "nrs": wNRS, "out": wOut,
	"age": wAge, "aged": wAge, "yo": wYO, "yoa": wYO, "y": wY, "old": wOld,
	"year": wYear, "years": wYear, "yr": wYear, "yrs": wYear,
	"month": wMonth, "months": wMonth, "mo": wMonth, "mos": wMonth,
	"week": wWeek, "weeks": wWeek, "wk": wWeek, "wks": wWeek, "w": wWeek,
	"day": wDay, "days": wDay, "d": wDay,
	"hour": wHour, "hours": wHour, "hrs": wHour, "h": wHour,
	"mg": wMg, "milligram": wMg, "milligrams": wMg,
	"mcg": wMcg, "ug": wMcg, "microgram": wMcg, "micrograms": wMcg,
	"g": wG, "gm": wG, "gram": wG, "grams": wG,
	"ml": wML, "cc": wML, "milliliter": wML, "milliliters": wML,
	"millilitre": wML, "millilitres": wML,
	"u": wUnit, "iu": wUnit, "unit": wUnit, "units": wUnit,
	"meq": wMEq, "x": wX, "q": wQ, "every": wEvery,
}

// lookupVitalWord lower-cases into a stack buffer because the compiler does not
// allocate for a map index of string(bytes).
func lookupVitalWord(w string) vword {
	if len(w) > maxVitalWordLen {
		return wNone
	}
	var buf [maxVitalWordLen]byte
	for i := 0; i < len(w); i++ {
		buf[i] = w[i] | 0x20 // w holds ASCII letters only
	}
	return vitalWords[string(buf[:len(w)])]
}

func asciiLetter(c byte) bool { c |= 0x20; return c >= 'a' && c <= 'z' }
func asciiDigit(c byte) bool  { return c >= '0' && c <= '9' }

// vitalsScanner carries one extraction. Tokens live in a ring so that memory
// does not grow with the input; patterns only look a bounded distance around
// the current token.
type vitalsScanner struct {
	s    string
	pos  int // next byte to lex
	n    int // tokens lexed so far
	ring [vitalsRing]vtoken
	none vtoken // what lies before the window: a vtEOF
	eof  vtoken
	vals [nVitalFields]float64
	has  uint16 // bit f set when vals[f] holds an accepted value
	q    []clinical.Quantity
	imp  []clinical.Implausible
}

// lex returns the next token. Words are runs of ASCII letters and numbers are
// runs of digits with at most one inner decimal point, so "58yo", "E2V3M4"
// and "SpO2" split where letters meet digits; patterns use gap to tell "58yo"
// from "58 yo" where it matters. Anything non-ASCII other than a degree sign
// or micro sign acts as a separator, which makes invalid UTF-8 harmless.
func (x *vitalsScanner) lex() (vtoken, bool) {
	s := x.s
	gap := x.pos == 0
	p := x.pos
	for p < len(s) {
		c := s[p]
		switch {
		case asciiLetter(c):
			e := p + 1
			for e < len(s) && asciiLetter(s[e]) {
				e++
			}
			x.pos = e
			return vtoken{start: p, end: e, kind: vtWord, w: lookupVitalWord(s[p:e]), gap: gap}, true
		case asciiDigit(c):
			e := p + 1
			for e < len(s) && asciiDigit(s[e]) {
				e++
			}
			if e+1 < len(s) && s[e] == '.' && asciiDigit(s[e+1]) {
				e += 2
				for e < len(s) && asciiDigit(s[e]) {
					e++
				}
			}
			// "1e308", "2.5E-3": kept whole and marked so that parse
			// refuses it; nobody charts vitals in scientific notation, and
			// reading the mantissa alone would turn "HR 1e3" into 1.
			var c byte
			if f := e + 1; f < len(s) && s[e]|0x20 == 'e' {
				if (s[f] == '+' || s[f] == '-') && f+1 < len(s) {
					f++
				}
				if asciiDigit(s[f]) {
					for f < len(s) && asciiDigit(s[f]) {
						f++
					}
					e, c = f, 'e'
				}
			}
			x.pos = e
			return vtoken{start: p, end: e, kind: vtNum, c: c, gap: gap}, true
		case c >= 0x80:
			if p+1 < len(s) {
				d := s[p+1]
				// °, º (often typed for °) and ˚.
				if (c == 0xC2 && (d == 0xB0 || d == 0xBA)) || (c == 0xCB && d == 0x9A) {
					x.pos = p + 2
					return vtoken{start: p, end: p + 2, kind: vtDeg, gap: gap}, true
				}
				// µg and μg (micro sign and Greek mu).
				if ((c == 0xC2 && d == 0xB5) || (c == 0xCE && d == 0xBC)) &&
					p+2 < len(s) && s[p+2]|0x20 == 'g' && (p+3 == len(s) || !asciiLetter(s[p+3])) {
					x.pos = p + 3
					return vtoken{start: p, end: p + 3, kind: vtWord, w: wMcg, gap: gap}, true
				}
			}
			gap = true
			p++
		case c > ' ' && c < 0x7f:
			x.pos = p + 1
			return vtoken{start: p, end: p + 1, kind: vtPunct, c: c, gap: gap}, true
		default: // whitespace, control bytes, NUL, DEL
			gap = true
			p++
		}
	}
	x.pos = len(s)
	return vtoken{}, false
}

// at returns token i, lexing forward as needed. Indices before the window or
// past the end yield a vtEOF token, so patterns need no bounds checks. The
// pointer stays valid until vitalsRing more tokens are lexed, far longer than
// any pattern holds it.
func (x *vitalsScanner) at(i int) *vtoken {
	if i >= 0 && uint(x.n-1-i) < vitalsRing {
		return &x.ring[i&(vitalsRing-1)]
	}
	return x.fill(i)
}

func (x *vitalsScanner) fill(i int) *vtoken {
	if i < 0 || i < x.n {
		return &x.none
	}
	for x.n <= i {
		t, ok := x.lex()
		if !ok {
			x.eof = vtoken{start: len(x.s), end: len(x.s), kind: vtEOF, gap: true}
			return &x.eof
		}
		x.ring[x.n&(vitalsRing-1)] = t
		x.n++
	}
	return &x.ring[i&(vitalsRing-1)]
}

func (x *vitalsScanner) isPunct(i int, c byte) bool {
	t := x.at(i)
	return t.kind == vtPunct && t.c == c
}

func (x *vitalsScanner) text(i int) string {
	t := x.at(i)
	return x.s[t.start:t.end]
}

// unitWord is the keyword at i when it can be a unit: "h2o" or "d5w" are not
// hours or days.
func (x *vitalsScanner) unitWord(i int) vword {
	t := x.at(i)
	if t.kind != vtWord {
		return wNone
	}
	if n := x.at(i + 1); n.kind == vtNum && !n.gap {
		return wNone
	}
	return t.w
}

func (x *vitalsScanner) run() {
	for i := 0; ; {
		next := i
		switch x.at(i).kind {
		case vtEOF:
			return
		case vtWord:
			next = x.keyword(i)
		case vtNum:
			next = x.number(i)
		}
		if next <= i {
			next = i + 1
		}
		i = next
	}
}

// parse converts a number token. Only digits and one dot ever reach strconv,
// so "NaN", "Inf" and exponents cannot; the checks are a second line.
func (x *vitalsScanner) parse(t *vtoken) (float64, bool) {
	if t.kind != vtNum || t.c != 0 || t.end-t.start > maxVitalNumLen {
		return 0, false
	}
	v, err := strconv.ParseFloat(x.s[t.start:t.end], 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, false
	}
	return v, true
}

// val reads a value at j, honouring a minus sign glued to the number so that
// "HR -5" is reported as implausible rather than read as 5.
func (x *vitalsScanner) val(j int) (float64, int, bool) {
	t := x.at(j)
	neg := false
	if t.kind == vtPunct && t.c == '-' {
		n := x.at(j + 1)
		if n.kind != vtNum || n.gap {
			return 0, j, false
		}
		neg, j, t = true, j+1, n
	}
	v, ok := x.parse(t)
	if !ok {
		return 0, j, false
	}
	if neg {
		v = -v
	}
	if v == 0 {
		v = 0 // no negative zero in output
	}
	return v, j + 1, true
}

// minus reports whether number i carries a minus sign rather than a hyphen:
// "-5" but not "2-3" or "x-2".
func (x *vitalsScanner) minus(i int) bool {
	p := x.at(i - 1)
	if p.kind != vtPunct || p.c != '-' || x.at(i).gap {
		return false
	}
	pp := x.at(i - 2)
	return p.gap || (pp.kind != vtWord && pp.kind != vtNum)
}

func (x *vitalsScanner) skipFillers(j int) int {
	for n := 0; n < maxVitalFillers; n++ {
		t := x.at(j)
		switch {
		case t.kind == vtPunct && (t.c == ':' || t.c == '=' || t.c == '~'):
		case t.kind == vtPunct && t.c == '-' && x.at(j+1).gap: // "HR - 110"
		case t.w == wFiller || t.w == wOf:
		default:
			return j
		}
		j++
	}
	return j
}

// compound matches the second word of a two-word keyword, allowing a hyphen
// ("pulse-ox"); it returns -1 when absent.
func (x *vitalsScanner) compound(j int, w vword) int {
	if x.at(j).w == w {
		return j + 1
	}
	if x.isPunct(j, '-') && x.at(j+1).w == w {
		return j + 2
	}
	return -1
}

// standalone reports whether single letter i stands on its own, so that the
// "P" of "G2P1", "b/p" or "p.o." and the "t" of "don't" are not read as keys.
func (x *vitalsScanner) standalone(i int) bool {
	t := x.at(i)
	if t.gap {
		return true
	}
	p := x.at(i - 1)
	switch p.kind {
	case vtWord, vtNum, vtDeg:
		return false
	case vtPunct:
		switch p.c {
		case '\'', '/', '-', '.', '&':
			return false
		}
	}
	return true
}

type vitalKey uint8

const (
	kNone vitalKey = iota
	kBP
	kSBP
	kDBP
	kHR
	kRR
	kTemp
	kSpO2
	kGCS
	kPain
	kPainScore
	kAge
)

// key recognises a keyword starting at word i. loose marks single-letter keys
// (P, R, T), which are accepted only with a believable value because the
// letters mean many other things.
func (x *vitalsScanner) key(i int) (k vitalKey, next int, loose bool) {
	t := x.at(i)
	switch t.w {
	case wBP:
		return kBP, i + 1, false
	case wB:
		if x.isPunct(i+1, '/') && x.at(i+2).w == wP {
			return kBP, i + 3, false
		}
	case wBlood:
		if j := x.compound(i+1, wPressure); j > 0 {
			return kBP, j, false
		}
	case wSBP:
		return kSBP, i + 1, false
	case wDBP:
		return kDBP, i + 1, false
	case wHR:
		return kHR, i + 1, false
	case wHeart:
		if j := x.compound(i+1, wRate); j > 0 {
			return kHR, j, false
		}
	case wPulse:
		if j := x.compound(i+1, wOx); j > 0 {
			return kSpO2, j, false
		}
		if j := x.compound(i+1, wRate); j > 0 {
			return kHR, j, false
		}
		return kHR, i + 1, false
	case wP:
		if x.standalone(i) {
			return kHR, i + 1, true
		}
	case wRR:
		return kRR, i + 1, false
	case wResp:
		if j := x.compound(i+1, wRate); j > 0 {
			return kRR, j, false
		}
		return kRR, i + 1, false
	case wRespiratory:
		if j := x.compound(i+1, wRate); j > 0 {
			return kRR, j, false
		}
	case wR:
		if x.standalone(i) {
			return kRR, i + 1, true
		}
	case wTemp:
		if j := x.compound(i+1, wMax); j > 0 {
			return kTemp, j, false
		}
		return kTemp, i + 1, false
	case wT:
		if j := x.compound(i+1, wMax); j > 0 {
			return kTemp, j, false
		}
		if x.standalone(i) {
			return kTemp, i + 1, true
		}
	case wSpO, wO:
		// "SpO2", "SaO2", "Sp02", "O2 sat": the 2 is lexed as a number.
		n := x.at(i + 1)
		if n.kind != vtNum || n.gap {
			break
		}
		if d := x.text(i + 1); d != "2" && d != "02" {
			break
		}
		if t.w == wSpO {
			return kSpO2, i + 2, false
		}
		if j := x.compound(i+2, wSat); j > 0 {
			return kSpO2, j, false
		}
	case wOxygen:
		if j := x.compound(i+1, wSat); j > 0 {
			return kSpO2, j, false
		}
	case wSat:
		return kSpO2, i + 1, false
	case wGCS:
		j := i + 1
		if x.at(j).w == wScale {
			j++
		}
		return kGCS, j, false
	case wGlasgow:
		j := i + 1
		if x.at(j).w == wComa {
			j++
		}
		if x.at(j).w == wScale {
			j++
		}
		return kGCS, j, false
	case wPain:
		if x.at(i+1).w == wScale {
			return kPainScore, i + 2, false
		}
		return kPain, i + 1, false
	case wNRS:
		return kPainScore, i + 1, false
	case wAge:
		return kAge, i + 1, false
	}
	return kNone, i, false
}

// foreign reports whether the value just before e belongs to something else:
// "sat 3 days", "pain 5 mg", "Sat 12/03", "radial pulse 2+" (a grade).
func (x *vitalsScanner) foreign(e int) bool {
	if x.isPunct(e, '/') && x.at(e+1).kind == vtNum {
		return true
	}
	if t := x.at(e); t.kind == vtPunct && t.c == '+' && !t.gap {
		return true
	}
	switch x.unitWord(e) {
	case wMg, wMcg, wG, wML, wUnit, wMEq, wDay, wWeek, wMonth, wYear, wHour, wYO, wY, wL:
		return true
	}
	return false
}

// keyword tries a vital-sign or age pattern starting at word i and returns
// the index after it, or i when nothing matched.
func (x *vitalsScanner) keyword(i int) int {
	k, j, loose := x.key(i)
	if k == kNone {
		return i
	}
	j = x.skipFillers(j)
	switch k {
	case kAge:
		return x.agePrefix(i, j)
	case kBP:
		a, e, ok := x.val(j)
		if !ok || !x.isPunct(e, '/') {
			return i
		}
		b, e, ok := x.val(e + 1)
		if !ok {
			return i
		}
		x.recordBP(a, b)
		return x.mmHg(e)
	case kSBP, kDBP:
		v, e, ok := x.val(j)
		if !ok || x.foreign(e) {
			return i
		}
		f := fSBP
		if k == kDBP {
			f = fDBP
		}
		x.bpSingle(f, v)
		return x.mmHg(e)
	case kHR, kRR:
		v, e, ok := x.val(j)
		if !ok || x.foreign(e) {
			return i
		}
		f, lo, hi := fHR, 20.0, 250.0
		if k == kRR {
			f, lo, hi = fRR, 4, 60
		}
		if loose && (v < lo || v > hi || x.glued(e)) {
			return i
		}
		x.vital(f, v)
		return x.rateUnit(e)
	case kTemp:
		v, e, ok := x.val(j)
		if !ok || x.foreign(e) || (loose && x.glued(e)) {
			return i
		}
		u, _, e := x.tempUnit(e)
		if !x.temp(v, u, !loose) {
			return i
		}
		return e
	case kSpO2:
		v, e, ok := x.val(j)
		if !ok || x.foreign(e) {
			return i
		}
		if x.isPunct(e, '%') {
			e++
		}
		x.vital(fSpO2, v)
		return e
	case kGCS:
		return x.gcs(i, j)
	case kPain, kPainScore:
		v, e, ok := x.val(j)
		if !ok {
			return i
		}
		if e2 := x.outOf10(e); e2 > e {
			x.vital(fPain, v)
			return e2
		}
		// A bare "pain 3" is too often "pain 3 days" or "pain 3 times".
		if k == kPain || x.foreign(e) {
			return i
		}
		x.vital(fPain, v)
		return e
	}
	return i
}

// glued reports whether the value before e runs straight into letters, as in
// "R 5th", which disqualifies a single-letter key.
func (x *vitalsScanner) glued(e int) bool {
	t := x.at(e)
	return t.kind == vtWord && !t.gap
}

// rateUnit skips "bpm", "/min", "per minute", "beats/min", "breaths per min".
func (x *vitalsScanner) rateUnit(k int) int {
	switch x.at(k).w {
	case wBPM:
		return k + 1
	case wBeats, wBreaths:
		k++
	}
	if (x.isPunct(k, '/') || x.at(k).w == wPer) && x.at(k+1).w == wMin {
		return k + 2
	}
	return k
}

func (x *vitalsScanner) mmHg(e int) int {
	if x.unitWord(e) == wMmHg {
		return e + 1
	}
	if x.at(e).w == wMm && x.unitWord(e+1) == wHg {
		return e + 2
	}
	return e
}

// tempUnit reads an optional temperature unit at k: u is 'C', 'F' or 0, deg
// whether a degree sign or word was present.
func (x *vitalsScanner) tempUnit(k int) (u byte, deg bool, next int) {
	t := x.at(k)
	if t.kind == vtDeg || t.w == wDegWord {
		deg = true
		k++
	}
	switch x.unitWord(k) {
	case wC:
		if x.isPunct(k+1, '/') && x.at(k+2).w == wO { // "c/o", complains of
			break
		}
		return 'C', deg, k + 1
	case wF:
		return 'F', deg, k + 1
	}
	return 0, deg, k
}

func fToC(f float64) float64 { return math.Round((f-32)*5/9*10) / 10 }

// temp records a temperature. Without a unit the number itself tells the
// scale, since the plausible °C and °F ranges do not overlap. report says
// whether an implausible value is worth reporting; when not, the caller was
// guessing (a lone "T", a bare "58 F" that is an age and sex) and temp returns
// false so the tokens stay available to other patterns.
func (x *vitalsScanner) temp(v float64, u byte, report bool) bool {
	c := v
	switch u {
	case 'F':
		c = fToC(v)
	case 'C':
	default:
		switch {
		case v >= 25 && v <= 45:
		case v >= 77 && v <= 113:
			c = fToC(v)
		default:
			if report {
				x.reject("temp_c", v, "temp_c "+fmtVital(v)+" (no unit) outside 25–45 °C and 77–113 °F")
			}
			return report
		}
	}
	if c < 25 || c > 45 {
		if report {
			r := "temp_c " + fmtVital(c)
			if u == 'F' {
				r += " (" + fmtVital(v) + " °F)"
			}
			x.reject("temp_c", c, r+" outside 25–45")
		}
		return report
	}
	x.set(fTemp, c)
	return true
}

// outOf10 matches "/10" or "out of 10" at e and returns the index after it,
// or e.
func (x *vitalsScanner) outOf10(e int) int {
	if x.isPunct(e, '/') && x.at(e+1).kind == vtNum && x.text(e+1) == "10" {
		return e + 2
	}
	if x.at(e).w == wOut && x.at(e+1).w == wOf && x.at(e+2).kind == vtNum && x.text(e+2) == "10" {
		return e + 3
	}
	return e
}

func (x *vitalsScanner) gcs(i, j int) int {
	t := x.at(j)
	if t.w == wE {
		return x.gcsParts(i, j)
	}
	v, e, ok := x.val(j)
	if !ok {
		return i
	}
	if x.isPunct(e, '/') && x.at(e+1).kind == vtNum && x.text(e+1) == "15" {
		e += 2
	} else if x.foreign(e) {
		return i
	}
	x.vital(fGCS, v)
	return e
}

// gcsParts reads "E2V3M4", "E2 V3 M4" or "E2, V3, M4" and records the sum.
// A component outside its own scale makes the whole score implausible even
// when the sum happens to land in 3–15.
func (x *vitalsScanner) gcsParts(i, j int) int {
	want := [3]vword{wE, wV, wM}
	top := [3]float64{4, 5, 6}
	start := x.at(j).start
	sum, bad := 0.0, false
	for n := range want {
		if n > 0 && x.isPunct(j, ',') {
			j++
		}
		if x.at(j).w != want[n] {
			return i
		}
		v, e, ok := x.val(j + 1)
		if !ok {
			return i
		}
		if v < 1 || v > top[n] {
			bad = true
		}
		sum += v
		j = e
	}
	if bad {
		x.reject("gcs", sum, "gcs "+x.s[start:x.at(j-1).end]+" outside E1–4 V1–5 M1–6")
		return j
	}
	x.vital(fGCS, sum)
	return j
}

// agePrefix handles "age 58", "aged 58", "age: 6 months".
func (x *vitalsScanner) agePrefix(i, j int) int {
	v, e, ok := x.val(j)
	if !ok {
		return i
	}
	switch x.unitWord(e) {
	case wYear, wYO, wY:
		e++
	case wMonth:
		v /= 12
		e++
	case wWeek:
		v = v * 7 / 365.25
		e++
	case wDay:
		v /= 365.25
		e++
	}
	return x.age(i, e, v)
}

// number tries the patterns that start with a bare number at i: a unit after
// it, a slash (BP, pain, fraction, date), a per cent sign, a degree sign.
func (x *vitalsScanner) number(i int) int {
	t := x.at(i)
	// "q6h", "B12", "CD4": a number glued to letters is part of a name, except
	// after "x" as in "x2 weeks".
	if p := x.at(i - 1); !t.gap && p.kind == vtWord && p.w != wX {
		return i
	}
	if x.minus(i) {
		return i
	}
	v, ok := x.parse(t)
	if !ok {
		return i
	}
	n := x.at(i + 1)
	switch n.kind {
	case vtPunct:
		switch n.c {
		case '/':
			return x.slash(i, v)
		case '%':
			return x.bareSat(i, v)
		case '-': // "58-year-old", "3-day"
			if u := x.at(i + 2); !n.gap && u.kind == vtWord && !u.gap {
				return x.unit(i, i+2, v)
			}
		}
		return i
	case vtDeg:
		return x.bareTemp(i, i+1, v)
	}
	return x.unit(i, i+1, v)
}

func (x *vitalsScanner) unit(i, u int, v float64) int {
	switch x.unitWord(u) {
	case wC, wF, wDegWord:
		return x.bareTemp(i, u, v)
	case wBPM:
		x.vital(fHR, v)
		return u + 1
	case wBeats:
		// "3 beats of VT" is not a heart rate; "110 beats/min" is.
		if e := x.rateUnit(u); e > u+1 {
			x.vital(fHR, v)
			return e
		}
	case wBreaths:
		if e := x.rateUnit(u); e > u+1 {
			x.vital(fRR, v)
			return e
		}
	case wYO, wY, wYear, wMonth, wWeek, wDay, wHour, wHR, wMin:
		return x.timeQty(i, u, v)
	case wMg, wMcg, wG, wML, wUnit, wMEq:
		return x.dose(i, u, v)
	}
	return i
}

// bareTemp needs an explicit C or F: a lone degree sign after a number is as
// often an angle ("HOB 30°", "flexion to 90°").
func (x *vitalsScanner) bareTemp(i, u int, v float64) int {
	unit, deg, e := x.tempUnit(u)
	if unit == 0 {
		return i
	}
	// "38.5°C" is unmistakable and worth reporting when absurd; "58 F" is
	// more likely a 58-year-old woman than 14 °C.
	if !x.temp(v, unit, deg) {
		return i
	}
	return e
}

// bareSat accepts "93% on RA", "88% RA", "92% on 2L": the oxygen context is
// what makes a bare percentage a saturation.
func (x *vitalsScanner) bareSat(i int, v float64) int {
	e := i + 2
	if x.at(e).w == wOn {
		e++
	}
	t := x.at(e)
	switch {
	case t.w == wRA || t.w == wRoom || t.w == wO2Dev:
	case t.kind == vtNum && x.unitWord(e+1) == wL:
	default:
		return i
	}
	x.vital(fSpO2, v)
	return i + 2
}

// slash handles "a/b" after a bare number. Only "a/b mmHg" is a blood
// pressure and only "a/10" with a ≤ 10 a pain score; fractions ("1/2 tab")
// and dates ("12/03", "3/10/2024") are consumed so that their parts are not
// read again as quantities.
func (x *vitalsScanner) slash(i int, a float64) int {
	b, e, ok := x.val(i + 2)
	if !ok {
		return i
	}
	if x.isPunct(e, '/') && x.at(e+1).kind == vtNum {
		return e + 2
	}
	if m := x.mmHg(e); m > e {
		x.recordBP(a, b)
		return m
	}
	if x.at(i+2).kind == vtNum && x.text(i+2) == "10" && a <= 10 {
		x.vital(fPain, a)
	}
	return e
}

var (
	// Durations are normalised to days, ages to years.
	durationDays = [...]float64{wYear: 365.25, wMonth: 30.44, wWeek: 7, wDay: 1}
	ageDivisor   = [...]float64{wYear: 1, wMonth: 12, wWeek: 365.25 / 7, wDay: 365.25}
)

// timeQty reads an age ("58yo", "58 y/o", "6 month old") or a duration
// ("3 days", "2 hrs") whose unit is at u.
func (x *vitalsScanner) timeQty(i, u int, v float64) int {
	w := x.at(u).w
	e := u + 1
	switch w {
	case wYO:
		return x.age(i, e, v)
	case wY:
		if (x.isPunct(e, '/') || x.isPunct(e, '.')) && x.at(e+1).w == wO {
			e += 2
			if t := x.at(e); t.kind == vtPunct && t.c == '.' && !t.gap {
				e++
			}
		}
		// A lone "y" ("58y M") is an age far more often than a duration.
		return x.age(i, e, v)
	case wYear, wMonth, wWeek, wDay:
		k := e
		if x.isPunct(k, '-') {
			k++
		}
		if x.at(k).w == wOld {
			return x.age(i, k+1, v/ageDivisor[w])
		}
	case wHR:
		// In "2 hr 110" the "hr" introduces a heart rate, not hours.
		if x.at(x.skipFillers(e)).kind == vtNum {
			return i
		}
	}
	// "q6h", "q 4-6 hours", "every 8 hours" say how often, not how long.
	p := x.at(i - 1)
	if p.kind == vtPunct && p.c == '-' && x.at(i-2).kind == vtNum {
		p = x.at(i - 3)
	}
	if p.w == wQ || p.w == wEvery {
		return e
	}
	var d float64
	switch w {
	case wHour, wHR:
		d = v / 24
	case wMin:
		d = v / 1440
	default:
		d = v * durationDays[w]
	}
	x.quantity(i, e, d, "d", clinical.KindDuration)
	return e
}

func (x *vitalsScanner) dose(i, u int, v float64) int {
	e := u + 1
	// "mg/kg", "g/dL", "mEq/L", "mL/hr" are weight-based doses, rates or
	// concentrations (often lab values), not an amount given.
	if x.isPunct(e, '/') && x.at(e+1).kind == vtWord {
		return e + 2
	}
	unit := "mg"
	switch x.at(u).w {
	case wMcg:
		v /= 1000
	case wG:
		v *= 1000
	case wML:
		unit = "mL"
	case wUnit:
		unit = "U"
	case wMEq:
		unit = "mEq"
	}
	x.quantity(i, e, v, unit, clinical.KindDose)
	return e
}

func (x *vitalsScanner) age(i, e int, v float64) int {
	if v < 0 || v > maxAgeYears {
		x.reject("age", v, "age "+fmtVital(v)+" outside 0–125")
		return e
	}
	x.quantity(i, e, v, "a", clinical.KindAge)
	return e
}

// quantity records tokens [first, end) as one quantity.
func (x *vitalsScanner) quantity(first, end int, v float64, unit string, kind clinical.QuantityKind) {
	a, b := x.at(first).start, x.at(end-1).end
	x.q = append(x.q, clinical.Quantity{Text: x.s[a:b], Value: v, Unit: unit, Kind: kind, Span: [2]int{a, b}})
}

func fmtVital(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func (x *vitalsScanner) reject(name string, v float64, reason string) {
	x.imp = append(x.imp, clinical.Implausible{Field: name, Value: v, Reason: reason})
}

func (x *vitalsScanner) isSet(f vfield) bool { return x.has&(1<<f) != 0 }

func (x *vitalsScanner) set(f vfield, v float64) {
	if x.isSet(f) {
		return
	}
	x.vals[f] = v
	x.has |= 1 << f
}

// inLimits reports whether v is physiological for f, recording it as
// implausible when not.
func (x *vitalsScanner) inLimits(f vfield, v float64) bool {
	l := &vitalLimits[f]
	if v < l.lo || v > l.hi {
		x.reject(l.name, v, l.name+" "+fmtVital(v)+" outside "+l.text)
		return false
	}
	return true
}

func (x *vitalsScanner) vital(f vfield, v float64) {
	if x.inLimits(f, v) {
		x.set(f, v)
	}
}

func (x *vitalsScanner) rejectOrder(sbp, dbp float64) {
	x.reject("dbp", dbp, "dbp "+fmtVital(dbp)+" not below sbp "+fmtVital(sbp))
}

// recordBP sets both halves of a pair or neither: mixing the systolic of one
// reading with the diastolic of another could invent a pressure.
func (x *vitalsScanner) recordBP(sbp, dbp float64) {
	okS := x.inLimits(fSBP, sbp)
	okD := x.inLimits(fDBP, dbp)
	if !okS || !okD {
		return
	}
	if dbp >= sbp {
		x.rejectOrder(sbp, dbp)
		return
	}
	if x.isSet(fSBP) || x.isSet(fDBP) {
		return
	}
	x.set(fSBP, sbp)
	x.set(fDBP, dbp)
}

// bpSingle records a lone "SBP 88" or "DBP 50", keeping sbp > dbp.
func (x *vitalsScanner) bpSingle(f vfield, v float64) {
	if !x.inLimits(f, v) || x.isSet(f) {
		return
	}
	sbp, dbp, other := v, x.vals[fDBP], fDBP
	if f == fDBP {
		sbp, dbp, other = x.vals[fSBP], v, fSBP
	}
	if x.isSet(other) && dbp >= sbp {
		x.rejectOrder(sbp, dbp)
		return
	}
	x.set(f, v)
}

// result points every accepted vital into one array: a single allocation
// instead of one per field.
func (x *vitalsScanner) result() VitalsResult {
	r := VitalsResult{Quantities: x.q, Implausible: x.imp}
	if x.has == 0 {
		return r
	}
	vals := new([nVitalFields]float64)
	*vals = x.vals
	p := func(f vfield) *float64 {
		if x.isSet(f) {
			return &vals[f]
		}
		return nil
	}
	r.Vitals = clinical.Vitals{
		SBP: p(fSBP), DBP: p(fDBP), HR: p(fHR), RR: p(fRR),
		TempC: p(fTemp), SpO2: p(fSpO2), GCS: p(fGCS), Pain: p(fPain),
	}
	return r
}
