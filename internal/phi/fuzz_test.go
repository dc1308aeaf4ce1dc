package phi

import (
	"bytes"
	"testing"
)

func FuzzOpen(f *testing.F) {
	f.Add("k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", []byte("MRN-12345"), "patients.mrn")
	f.Add("", []byte{}, "")
	f.Add("k1:", []byte{0}, "queries.text")
	kr, err := NewKeyring(Key{"k2", secret(2)}, Key{"k1", secret(1)})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, sealed string, pt []byte, ad string) {
		// Arbitrary input must never panic; a success on random input would mean a forged ciphertext.
		if got, err := kr.Open(sealed, ad); err == nil {
			t.Fatalf("Open accepted a forged value %q -> %q", sealed, got)
		}
		s, err := kr.Seal(pt, ad)
		if err != nil {
			t.Fatal(err)
		}
		got, err := kr.Open(s, ad)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("round trip failed: %v", err)
		}
		if _, err := kr.Open(s, ad+"x"); err == nil {
			t.Fatal("Open accepted a different associated data")
		}
	})
}
