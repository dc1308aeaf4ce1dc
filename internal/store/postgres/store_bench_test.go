package postgres

import (
	"testing"

	"medserve/internal/store/storetest"
)

// BenchmarkPatientHistory100k: 100,000 queries over 2,000 patients (50
// each); one op is a patient's last 50 queries plus the year's summary.
func BenchmarkPatientHistory100k(b *testing.B) {
	db, _ := openTemp(b)
	patients := storetest.LoadHistory(b, db, 100_000, 2_000)
	storetest.BenchmarkPatientHistory(b, db, patients)
}

// BenchmarkWriteBatch: one op is a recorder batch of 256 queries and 256 audit events.
func BenchmarkWriteBatch(b *testing.B) {
	db, _ := openTemp(b)
	storetest.BenchmarkWriteBatch(b, db, 256)
}
