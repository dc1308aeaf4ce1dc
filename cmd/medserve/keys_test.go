package main

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"medserve/internal/auth"
	"medserve/internal/store/sqlite"
)

func keysCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = run(context.Background(), append([]string{"medserve", "keys"}, args...), testEnv(nil), &out, &errb)
	return out.String(), errb.String(), err
}

var tokenRE = regexp.MustCompile(`msk_k[0-9a-f]{12}_[A-Za-z0-9_-]{43}`)

// TestKeysCommand: create prints a working token once, list shows the key
// without its hash, revoke stops the token from working.
func TestKeysCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	out, _, err := keysCmd(t, "create", "--data-dir", dir, "--role", "service", "--name", "integration engine", "--limits", "inference=600/min burst 100")
	if err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	tokens := tokenRE.FindAllString(out, -1)
	if len(tokens) != 1 {
		t.Fatalf("create printed %d tokens, want 1:\n%s", len(tokens), out)
	}
	token := tokens[0]
	id, secret, ok := auth.ParseToken(token)
	if !ok || !strings.Contains(out, "id:    "+id+"\n") {
		t.Fatalf("create output:\n%s", out)
	}
	if _, _, err := keysCmd(t, "create", "--data-dir", dir, "--role", "auditor"); err != nil {
		t.Fatal(err)
	}

	authenticate := func() (auth.Principal, error) {
		t.Helper()
		db, err := sqlite.Open(ctx, filepath.Join(dir, "medserve.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		return auth.NewAuthenticator(db, nil, nil).Authenticate(r)
	}
	p, err := authenticate()
	if err != nil || p.ID != id || p.Role != "service" || p.Limits != "inference=600/min burst 100" {
		t.Fatalf("the printed token authenticates as %+v, %v", p, err)
	}

	out, _, err = keysCmd(t, "list", "--data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") {
		t.Fatalf("list:\n%s", out)
	}
	for _, want := range []string{id, "service", "integration engine", "inference=600/min burst 100", "auditor"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, secret) || strings.Contains(out, auth.HashSecret(secret)) {
		t.Fatalf("list shows the secret or its hash:\n%s", out)
	}
	if !strings.HasSuffix(strings.TrimSpace(lines[1]), "-") {
		t.Fatalf("a valid key listed as revoked: %q", lines[1])
	}

	// Flags may follow the id.
	out, _, err = keysCmd(t, "revoke", id, "--data-dir", dir)
	if err != nil || !strings.Contains(out, "revoked "+id) {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	if _, err := authenticate(); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("a revoked token: %v", err)
	}
	out, _, err = keysCmd(t, "revoke", "--data-dir", dir, id)
	if err != nil || !strings.Contains(out, "already revoked") {
		t.Fatalf("revoke twice: %v\n%s", err, out)
	}
	out, _, _ = keysCmd(t, "list", "--data-dir", dir)
	if row := strings.Split(out, "\n")[1]; !strings.Contains(row, id) || strings.HasSuffix(strings.TrimSpace(row), " -") {
		t.Fatalf("the revoked key is not listed as revoked:\n%s", out)
	}
	if _, _, err := keysCmd(t, "revoke", "--data-dir", dir, "k000000000000"); err == nil || !strings.Contains(err.Error(), "no API key") {
		t.Fatalf("revoke an unknown key: %v", err)
	}
}

func TestKeysCommandUsage(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		nil,
		{"rotate"},
		{"create", "--data-dir", dir},
		{"create", "--data-dir", dir, "--role", "root"},
		{"create", "--data-dir", dir, "--role", "admin", "extra"},
		{"revoke", "--data-dir", dir},
		{"revoke", "--data-dir", dir, "k1", "k2"},
		{"list", "--data-dir", dir, "extra"},
		{"create", "--no-such-flag"},
	} {
		if _, _, err := keysCmd(t, args...); !errors.Is(err, errUsage) {
			t.Errorf("keys %q: %v, want a usage error", args, err)
		}
	}
	// None of them stored a key.
	out, _, err := keysCmd(t, "list", "--data-dir", dir)
	if err != nil || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("list after refused commands: %v\n%s", err, out)
	}
	if out, _, err := keysCmd(t, "create", "-h"); err != nil || tokenRE.MatchString(out) {
		t.Fatalf("create -h: %v\n%s", err, out)
	}
}
