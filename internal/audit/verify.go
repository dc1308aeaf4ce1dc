package audit

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"math"
)

// Problem kinds reported by Verify.
const (
	KindAltered            = "altered"             // Hash does not match the event's content
	KindBrokenLink         = "broken-link"         // Prev does not match the previous event's Hash
	KindGap                = "gap"                 // Seq skips or repeats
	KindCheckpointMismatch = "checkpoint-mismatch" // the event at a checkpoint's Seq has another hash: the chain was rewritten
	KindTruncated          = "truncated"           // a checkpoint names an event that no longer exists
	KindCheckpointInvalid  = "checkpoint-invalid"  // a checkpoint's signature or key id does not verify
)

// maxProblems caps the report so a wholly rewritten log cannot exhaust memory;
// Verify still walks every event to count them.
const maxProblems = 1000

// Problem is one defect found by Verify, located by Seq.
type Problem struct {
	Seq    int64  `json:"seq"`
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

// Report is the outcome of Verify.
type Report struct {
	Events             int64     `json:"events"`
	Head               string    `json:"head"`
	OK                 bool      `json:"ok"`
	Problems           []Problem `json:"problems,omitempty"`
	CheckpointsChecked int       `json:"checkpoints_checked"`
}

func (r *Report) add(seq int64, kind, format string, args ...any) {
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, Problem{Seq: seq, Kind: kind, Detail: fmt.Sprintf(format, args...)})
	}
}

// Verify walks the whole chain and reports every problem it finds, ordered by Seq.
//
// After a problem the walk continues from the event as stored, so one
// tampered entry yields problems at that entry only instead of cascading to
// the end. Each checkpoint must verify with keys[cp.KeyID] (a key id ring, so
// keys can rotate); a valid one must name an existing event with that hash.
// The returned error is for storage failures only; tampering is in the Report.
func Verify(ctx context.Context, s Storage, cps []Checkpoint, keys map[string]ed25519.PublicKey) (Report, error) {
	var r Report
	bySeq := make(map[int64][]Checkpoint)
	for _, cp := range cps {
		pub, ok := keys[cp.KeyID]
		if !ok {
			r.add(cp.Seq, KindCheckpointInvalid, "unknown key id %q", cp.KeyID)
			continue
		}
		if err := VerifyCheckpoint(cp, pub); err != nil {
			r.add(cp.Seq, KindCheckpointInvalid, "%v", err)
			continue
		}
		r.CheckpointsChecked++
		bySeq[cp.Seq] = append(bySeq[cp.Seq], cp)
	}
	checkCPs := func(seq int64, hash string) {
		for _, cp := range bySeq[seq] {
			if cp.Head != hash {
				r.add(seq, KindCheckpointMismatch, "checkpoint of %s (key %s) says head %s, chain has %s",
					cp.Time.UTC().Format("2006-01-02T15:04:05Z"), cp.KeyID, cp.Head, hash)
			}
		}
		// Seen once is enough: a repeated Seq is already reported as a gap.
		delete(bySeq, seq)
	}
	checkCPs(0, Genesis)

	prev, want := Genesis, int64(1)
	err := s.Range(ctx, 1, math.MaxInt64, func(e Event) error {
		r.Events++
		if e.Seq != want {
			if e.Seq < want {
				r.add(e.Seq, KindGap, "seq %d repeats or goes back (expected %d)", e.Seq, want)
			} else {
				r.add(e.Seq, KindGap, "seq %d follows %d (missing %d..%d)", e.Seq, want-1, want, e.Seq-1)
			}
		}
		if e.Prev != prev {
			r.add(e.Seq, KindBrokenLink, "prev %s does not match previous hash %s", e.Prev, prev)
		}
		if h := e.ComputeHash(); h != e.Hash {
			r.add(e.Seq, KindAltered, "stored hash %s, content hashes to %s", e.Hash, h)
		}
		checkCPs(e.Seq, e.Hash)
		prev, want = e.Hash, e.Seq+1
		return nil
	})
	if err != nil {
		return Report{}, fmt.Errorf("audit: verify: %w", err)
	}
	r.Head = prev
	for seq := range bySeq {
		r.add(seq, KindTruncated, "checkpoint names event %d but the chain ends at %d", seq, want-1)
	}
	r.OK = len(r.Problems) == 0
	sortProblems(r.Problems)
	return r, nil
}
