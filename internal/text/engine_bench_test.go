package text

import (
	"io/fs"
	"os"
	"testing"

	"medserve"
)

// A 10-word chief complaint, the shape of the KTAS complaints.
const benchComplaint = "58yo male crushing chest pain radiating to left arm, sweaty"

func BenchmarkAnalyzeComplaint(b *testing.B) {
	e := engine(b)
	b.ReportAllocs()
	for b.Loop() {
		e.Analyze(benchComplaint, Options{})
	}
}

func BenchmarkAnalyzeNote(b *testing.B) {
	note, err := os.ReadFile("testdata/ed-note.txt")
	if err != nil {
		b.Fatal(err)
	}
	e := engine(b)
	text := string(note)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		e.Analyze(text, Options{})
	}
}

func BenchmarkAnalyzeNoteParallel(b *testing.B) {
	note, err := os.ReadFile("testdata/ed-note.txt")
	if err != nil {
		b.Fatal(err)
	}
	e := engine(b)
	text := string(note)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e.Analyze(text, Options{})
		}
	})
}

func BenchmarkLoad(b *testing.B) {
	data, err := fs.Sub(medserve.Data, "data")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(data); err != nil {
			b.Fatal(err)
		}
	}
}
