package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// keyFile is the embedded mode's checkpoint signing key on disk.
type keyFile struct {
	ID   string `json:"id"`
	Seed string `json:"seed"` // standard base64 of the 32-byte Ed25519 seed
}

// PublicKey returns the signer's key id and public key, which is all a verifier needs.
func (s *Signer) PublicKey() (string, ed25519.PublicKey) {
	return s.keyID, s.priv.Public().(ed25519.PublicKey)
}

// SignerFromEnv reads MEDSERVE_AUDIT_KEY (standard base64 of a 32-byte
// Ed25519 seed) and MEDSERVE_AUDIT_KEY_ID (default "a1"); ok is false when
// the key is unset. Errors never include the value, which is the secret.
func SignerFromEnv(getenv func(string) string) (s *Signer, ok bool, err error) {
	v := getenv("MEDSERVE_AUDIT_KEY")
	if v == "" {
		return nil, false, nil
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, false, errors.New("MEDSERVE_AUDIT_KEY must be the standard base64 of 32 bytes")
	}
	id := getenv("MEDSERVE_AUDIT_KEY_ID")
	if id == "" {
		id = "a1"
	}
	return NewSigner(id, ed25519.NewKeyFromSeed(seed)), true, nil
}

// LoadOrCreateSigner is the embedded mode: read the signing key at path, or
// create one (mode 0600) and report created so the caller can log the path
// (never the key). A file readable by group or others is refused.
func LoadOrCreateSigner(path string) (s *Signer, created bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		seed := make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return nil, false, fmt.Errorf("audit key: %w", err)
		}
		// The id names the key by its fingerprint: replicas that each
		// generate a key must not label different keys alike, or a
		// verifier holding several public keys would pick the wrong one.
		pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
		fp := sha256.Sum256(pub)
		kf := keyFile{ID: "ed-" + hex.EncodeToString(fp[:6]), Seed: base64.StdEncoding.EncodeToString(seed)}
		data, _ := json.Marshal(kf)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, false, fmt.Errorf("audit key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return LoadOrCreateSigner(path) // another process won the race
		}
		if err != nil {
			return nil, false, fmt.Errorf("audit key: %w", err)
		}
		if _, err := f.Write(append(data, '\n')); err != nil {
			f.Close()
			return nil, false, fmt.Errorf("audit key: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, false, fmt.Errorf("audit key: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, false, fmt.Errorf("audit key: %w", err)
		}
		return NewSigner(kf.ID, ed25519.NewKeyFromSeed(seed)), true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("audit key: %w", err)
	}
	s, err = parseKeyFile(path, b)
	return s, false, err
}

// ReadSigner reads the key file at path without creating one (for
// verification, which must not write); a missing file is fs.ErrNotExist.
func ReadSigner(path string) (*Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	return parseKeyFile(path, b)
}

func parseKeyFile(path string, b []byte) (*Signer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("audit key %s: readable by group or others (mode %v); chmod 600 it", path, fi.Mode().Perm())
	}
	var kf keyFile
	if err := json.Unmarshal(b, &kf); err != nil {
		return nil, fmt.Errorf("audit key %s: not a key file", path)
	}
	seed, err := base64.StdEncoding.DecodeString(kf.Seed)
	if err != nil || len(seed) != ed25519.SeedSize || kf.ID == "" {
		return nil, fmt.Errorf("audit key %s: not a key file", path)
	}
	return NewSigner(kf.ID, ed25519.NewKeyFromSeed(seed)), nil
}

// ParsePublicKeys reads "id:base64,id:base64" (old verification keys kept after rotation).
func ParsePublicKeys(s string) (map[string]ed25519.PublicKey, error) {
	keys := map[string]ed25519.PublicKey{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, b64, ok := strings.Cut(part, ":")
		pub, err := base64.StdEncoding.DecodeString(b64)
		if !ok || id == "" || err != nil || len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("audit public key %q: want id:base64 of 32 bytes", id)
		}
		keys[id] = pub
	}
	return keys, nil
}

// Webhook posts each checkpoint as JSON to a URL, in the background, so a
// slow receiver never holds up the audit flusher. The checkpoint file stays
// the record of truth; the webhook puts a copy where a database
// administrator cannot reach it.
type Webhook struct {
	url    string
	client *http.Client
	queue  chan Checkpoint
	done   chan struct{}
	logf   func(string, ...any)
}

// NewWebhook starts a webhook sender; Close stops it after sending what is queued.
func NewWebhook(url string, logf func(string, ...any)) *Webhook {
	w := &Webhook{url: url, client: &http.Client{Timeout: 5 * time.Second}, queue: make(chan Checkpoint, 256), done: make(chan struct{}), logf: logf}
	go w.run()
	return w
}

// Write queues cp; when the queue is full the checkpoint is dropped and
// logged (the file still has it).
func (w *Webhook) Write(cp Checkpoint) error {
	select {
	case w.queue <- cp:
		return nil
	default:
		return errors.New("audit webhook queue full, checkpoint kept in the file only")
	}
}

func (w *Webhook) run() {
	defer close(w.done)
	for cp := range w.queue {
		body, _ := json.Marshal(cp)
		var err error
		for attempt, d := 0, 200*time.Millisecond; attempt < 3; attempt, d = attempt+1, d*4 {
			if err = w.post(body); err == nil {
				break
			}
			time.Sleep(d)
		}
		if err != nil {
			w.logf("audit webhook: checkpoint %d not delivered: %v", cp.Seq, err)
		}
	}
}

func (w *Webhook) post(body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// Close sends what is queued and stops.
func (w *Webhook) Close() {
	close(w.queue)
	<-w.done
}
