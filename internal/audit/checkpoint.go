package audit

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"
)

// checkpointDomain separates checkpoint signatures from anything else the key might sign.
const checkpointDomain = "medserve-audit-checkpoint\x00"

// Checkpoint is a signed statement of the chain's length and head hash, written outside the database.
type Checkpoint struct {
	Seq   int64     `json:"seq"`
	Head  string    `json:"head"`
	Time  time.Time `json:"time"`
	KeyID string    `json:"key_id"`
	Sig   string    `json:"sig"` // base64 Ed25519 over checkpointMessage
}

// checkpointMessage is domain + 8-byte big-endian seq + length-prefixed head +
// length-prefixed RFC3339Nano UTC time; length prefixes keep it unambiguous.
func checkpointMessage(seq int64, head string, t time.Time) []byte {
	b := []byte(checkpointDomain)
	b = binary.BigEndian.AppendUint64(b, uint64(seq))
	b = appendString(b, head)
	return appendString(b, t.UTC().Format(time.RFC3339Nano))
}

// Signer signs checkpoints with one Ed25519 key identified by a key id.
type Signer struct {
	keyID string
	priv  ed25519.PrivateKey
}

// NewSigner returns a Signer for priv, labelled keyID so verifiers can pick the key after rotation.
func NewSigner(keyID string, priv ed25519.PrivateKey) *Signer {
	return &Signer{keyID: keyID, priv: priv}
}

// Sign returns the signed checkpoint for a chain of seq events whose last hash is head.
func (s *Signer) Sign(seq int64, head string, t time.Time) Checkpoint {
	t = t.UTC()
	sig := ed25519.Sign(s.priv, checkpointMessage(seq, head, t))
	return Checkpoint{Seq: seq, Head: head, Time: t, KeyID: s.keyID, Sig: base64.StdEncoding.EncodeToString(sig)}
}

// VerifyCheckpoint checks cp's signature with pub.
func VerifyCheckpoint(cp Checkpoint, pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return errors.New("audit: checkpoint: bad public key size")
	}
	sig, err := base64.StdEncoding.DecodeString(cp.Sig)
	if err != nil {
		return fmt.Errorf("audit: checkpoint: signature encoding: %w", err)
	}
	if !ed25519.Verify(pub, checkpointMessage(cp.Seq, cp.Head, cp.Time), sig) {
		return errors.New("audit: checkpoint: signature does not verify")
	}
	return nil
}

// CheckpointFile appends checkpoints as JSON lines to a file (0600, fsync after each write).
type CheckpointFile struct {
	mu sync.Mutex
	f  *os.File
}

// OpenCheckpointFile opens path for appending, creating it with mode 0600.
func OpenCheckpointFile(path string) (*CheckpointFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: checkpoint file: %w", err)
	}
	// An existing file may have been created looser; checkpoints reveal
	// activity volume, so tighten it rather than trust it.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: checkpoint file: %w", err)
	}
	return &CheckpointFile{f: f}, nil
}

// Write appends cp as one JSON line and fsyncs, so an acknowledged checkpoint survives a crash.
func (f *CheckpointFile) Write(cp Checkpoint) error {
	line, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("audit: checkpoint: %w", err)
	}
	line = append(line, '\n')
	f.mu.Lock()
	defer f.mu.Unlock()
	// One write call per line: with O_APPEND a crash can only tear the last line.
	if _, err := f.f.Write(line); err != nil {
		return fmt.Errorf("audit: checkpoint write: %w", err)
	}
	if err := f.f.Sync(); err != nil {
		return fmt.Errorf("audit: checkpoint sync: %w", err)
	}
	return nil
}

// Close closes the file.
func (f *CheckpointFile) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.f.Close()
}

// ReadCheckpoints reads every checkpoint in path.
//
// A final line without its newline that does not parse is a write torn by a
// crash and is skipped, since it was never acknowledged; any other bad line
// is an error, because silently dropping checkpoints would hide truncation.
func ReadCheckpoints(path string) ([]Checkpoint, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit: checkpoints: %w", err)
	}
	var cps []Checkpoint
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	torn := len(data) > 0 && data[len(data)-1] != '\n'
	nlines := bytes.Count(data, []byte{'\n'})
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var cp Checkpoint
		if err := json.Unmarshal(line, &cp); err != nil {
			if torn && n == nlines+1 {
				break
			}
			return nil, fmt.Errorf("audit: checkpoints: %s line %d: %w", path, n, err)
		}
		cps = append(cps, cp)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("audit: checkpoints: %w", err)
	}
	return cps, nil
}

// sortProblems orders problems by Seq (stable, so chain order is kept within one Seq).
func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
}
