package text

import "testing"

const vitalsComplaint = "58yo male chest pain BP 88/54 HR 118 sat 93%"

// vitalsNote is a made-up ED note of about 300 words in the usual shape:
// triage line, HPI, medications, exam with a second set of vitals, course.
const vitalsNote = `ED PHYSICIAN NOTE
Triage: 67-year-old female BIBA with SOB and productive cough x 4 days. VS: T 101.3 F, HR 118, BP 98/62 mmHg, RR 28, SpO2 86% on RA, improved to 93% on 4L NC. Pain 6/10. GCS 15.

HPI: Pt is a 67 y/o F with hx of COPD, HTN, T2DM and CHF (EF 35%) who presents with worsening dyspnea and cough productive of green sputum for 4 days, associated with subjective fevers and chills since 3 days. She reports pleuritic R sided chest pain, 6/10, worse with deep breaths. Used her albuterol inhaler q4h without relief. Denies hemoptysis, leg swelling, recent travel. Decreased PO intake for 2 days. Last BM yesterday.

Meds: metformin 1000 mg BID, lisinopril 20 mg daily, furosemide 40 mg daily, insulin glargine 22 units qHS, tiotropium 18 mcg daily, albuterol 2 puffs q4-6h PRN.
Allergies: PCN (rash).

Exam: Ill-appearing, tachypneic, speaking in short sentences. Temp 38.6 C, pulse 116, resp 26, blood pressure 102/64, O2 sat 94% on 4 L. Lungs with coarse crackles R base and diffuse expiratory wheeze. Heart tachycardic, regular, no murmur. Abd soft, NT/ND. No LE edema. Alert and oriented x3, GCS E4V5M6.

Labs: WBC 16.2, Hgb 11.8 g/dL, K 3.4 mEq/L, lactate 2.9 mmol/L, glucose 248 mg/dL. CXR: RLL consolidation.

ED course: Given ceftriaxone 1 g IV, azithromycin 500 mg IV, duoneb x3, methylprednisolone 125 mg IV, 30 mL/kg LR bolus (1.5 L) over 2 hours, acetaminophen 650 mg PO at 14:30, potassium chloride 20 mEq PO. Repeat vitals after 1 hr: HR 104, BP 110/68, RR 22, SpO2 95% on 3L, Tmax 102.1.
Assessment: 67 yo F with sepsis due to RLL community-acquired pneumonia with COPD exacerbation. Plan: admit to step-down, continue antibiotics for 7 days, prednisone 40 mg daily x 5 days, nebs q4h, trend lactate q6h, glucose checks AC/HS. Code status: full. Family at bedside updated on 12/03.`

func BenchmarkExtractVitalsComplaint(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(vitalsComplaint)))
	for b.Loop() {
		ExtractVitals(vitalsComplaint)
	}
}

func BenchmarkExtractVitalsNote(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(vitalsNote)))
	for b.Loop() {
		ExtractVitals(vitalsNote)
	}
}
