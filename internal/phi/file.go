package phi

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// maxKeyringFile bounds how much we read: a keyring file is tiny, anything large is not ours.
const maxKeyringFile = 1 << 20

// fileFormat is the on-disk keyring: the first key is current, the rest are old keys.
type fileFormat struct {
	Version int       `json:"version"`
	Keys    []fileKey `json:"keys"`
}

type fileKey struct {
	ID     string `json:"id"`
	Secret string `json:"secret"` // standard base64
}

// LoadOrCreate is the embedded mode: read the keyring file at path, or create it with a fresh random key (mode
// 0600, directory 0700); a file readable by group or others is refused. Returns whether it was created.
// The caller should log the path (never the key) when created is true.
func LoadOrCreate(path string) (kr *Keyring, created bool, err error) {
	kr, err = load(path)
	if err == nil {
		return kr, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("phi: create keyring directory: %w", err)
	}
	secret := make([]byte, SecretSize)
	if _, err := rand.Read(secret); err != nil {
		return nil, false, fmt.Errorf("phi: generate key: %w", err)
	}
	kr, err = NewKeyring(Key{ID: DefaultKeyID, Secret: secret})
	if err != nil {
		return nil, false, err
	}
	data, err := json.MarshalIndent(fileFormat{Version: 1, Keys: []fileKey{{ID: DefaultKeyID, Secret: b64std(secret)}}}, "", "  ")
	if err != nil {
		return nil, false, fmt.Errorf("phi: encode keyring: %w", err)
	}
	won, err := writeNew(path, append(data, '\n'))
	if err != nil {
		return nil, false, err
	}
	if !won {
		// Another process created the file between our load and write: use its key so both agree.
		kr, err = load(path)
		return kr, false, err
	}
	return kr, true, nil
}

// writeNew writes data to a temp file and hard-links it into place, so readers never see a partial file and an
// existing keyring is never overwritten (losing it would make all sealed data unreadable). won is false if path
// already existed.
func writeNew(path string, data []byte) (won bool, err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".phi-keyring-*")
	if err != nil {
		return false, fmt.Errorf("phi: create keyring: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	// CreateTemp already uses 0600; Chmod makes that explicit and independent of its implementation.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return false, fmt.Errorf("phi: create keyring: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, fmt.Errorf("phi: write keyring: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, fmt.Errorf("phi: write keyring: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("phi: write keyring: %w", err)
	}
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("phi: install keyring: %w", err)
	}
	return true, nil
}

// load reads and validates a keyring file; errors never include file contents, which hold secrets.
func load(path string) (*Keyring, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("phi: open keyring %s: %w", path, err)
	}
	defer f.Close()
	// Stat the open file, not the path, so the mode checked is the mode of what we read.
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("phi: stat keyring %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("phi: keyring %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("phi: keyring %s has mode %04o, readable by group or others; run: chmod 600 %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyringFile+1))
	if err != nil {
		return nil, fmt.Errorf("phi: read keyring %s: %w", path, err)
	}
	if len(data) > maxKeyringFile {
		return nil, fmt.Errorf("phi: keyring %s is too large", path)
	}
	var ff fileFormat
	if err := json.Unmarshal(data, &ff); err != nil {
		// json errors can quote a byte of the input, which may be secret: report only where.
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("phi: keyring %s: malformed JSON at offset %d", path, se.Offset)
		}
		return nil, fmt.Errorf("phi: keyring %s: malformed JSON", path)
	}
	if ff.Version != 1 {
		return nil, fmt.Errorf("phi: keyring %s: unsupported version %d", path, ff.Version)
	}
	if len(ff.Keys) == 0 {
		return nil, fmt.Errorf("phi: keyring %s: no keys", path)
	}
	keys := make([]Key, len(ff.Keys))
	for i, fk := range ff.Keys {
		s, err := decodeSecret(fk.Secret)
		if err != nil {
			return nil, fmt.Errorf("phi: keyring %s: key %q: %v", path, fk.ID, err)
		}
		keys[i] = Key{ID: fk.ID, Secret: s}
	}
	kr, err := NewKeyring(keys[0], keys[1:]...)
	if err != nil {
		return nil, fmt.Errorf("phi: keyring %s: %w", path, err)
	}
	return kr, nil
}

// b64std encodes a secret for the keyring file.
func b64std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
