package auth

import (
	"strings"
	"testing"
)

func TestCan(t *testing.T) {
	tests := []struct {
		role  string
		roles []string
		want  bool
	}{
		{RoleAdmin, nil, true},
		{RoleAdmin, []string{RoleAuditor}, true},
		{RoleClinician, []string{RoleClinician}, true},
		{RoleClinician, []string{RoleService, RoleClinician}, true},
		{RoleClinician, []string{RoleAuditor}, false},
		{RoleClinician, []string{RoleAdmin}, false},
		{RoleClinician, nil, false},
		{RoleService, []string{RoleClinician, RoleAuditor}, false},
		{RoleAuditor, []string{RoleAuditor}, true},
		{"", []string{""}, false}, // anonymous holds no role, even if "" is asked for
		{"", []string{RoleClinician}, false},
		{"Admin", []string{RoleClinician}, false},
		{"root", []string{"root"}, true}, // Can compares; roles are validated where principals are made
	}
	for _, tc := range tests {
		if got := (Principal{Role: tc.role}).Can(tc.roles...); got != tc.want {
			t.Errorf("%q.Can(%q) = %v, want %v", tc.role, tc.roles, got, tc.want)
		}
	}
	if Anonymous().Can(RoleClinician, RoleService, RoleAuditor, RoleAdmin) {
		t.Error("anonymous may act in a role")
	}
}

func TestValidRole(t *testing.T) {
	for _, r := range Roles() {
		if !ValidRole(r) {
			t.Errorf("%q invalid", r)
		}
	}
	for _, r := range []string{"", "root", "Admin", " admin", "admin\x00"} {
		if ValidRole(r) {
			t.Errorf("%q valid", r)
		}
	}
}

func TestNewKeyParseToken(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		id, secret, token, err := NewKey()
		if err != nil {
			t.Fatal(err)
		}
		if !ValidKeyID(id) || len(secret) != 43 || token != "msk_"+id+"_"+secret {
			t.Fatalf("NewKey = %q, %q, %q", id, secret, token)
		}
		if seen[id] || seen[secret] {
			t.Fatal("NewKey repeated itself")
		}
		seen[id], seen[secret] = true, true
		gid, gsecret, ok := ParseToken(token)
		if !ok || gid != id || gsecret != secret {
			t.Fatalf("ParseToken(%q) = %q, %q, %v", token, gid, gsecret, ok)
		}
		if !IsKeyToken(token) {
			t.Fatal("IsKeyToken false for a key token")
		}
	}
}

func TestParseTokenMalformed(t *testing.T) {
	_, _, good, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	id, secret := good[4:17], good[18:]
	// A secret whose last character carries non-zero spare bits decodes
	// leniently to the same bytes; it must not be a second spelling.
	last := strings.IndexByte("AEIMQUYcgkosw048", secret[42])
	sloppy := secret[:42] + string("BFJNRVZdhlptx159"[max(last, 0)])
	tests := []string{
		"",
		"msk_",
		"msk_" + id,
		"msk_" + id + "_",
		"MSK_" + id + "_" + secret,
		"msk-" + id + "_" + secret,
		"msk_" + id + "-" + secret,
		"msk_" + strings.ToUpper(id) + "_" + secret,
		"msk_x" + id[1:] + "_" + secret,
		"msk_" + id[:12] + "_" + secret,
		"msk_" + id + "0_" + secret,
		"msk_" + id + "_" + secret[:42],
		"msk_" + id + "_" + secret + "A",
		"msk_" + id + "_" + secret[:42] + "=",
		"msk_" + id + "_" + secret[:41] + "+/",
		"msk_" + id + "_" + secret[:42] + "\n",
		"msk_" + id + "_" + sloppy,
		"msk_" + id + "_" + secret + "_" + secret,
		" msk_" + id + "_" + secret,
		"Bearer msk_" + id + "_" + secret,
	}
	for _, tok := range tests {
		if gid, gs, ok := ParseToken(tok); ok {
			t.Errorf("ParseToken(%q) accepted: %q, %q", tok, gid, gs)
		}
	}
}

func TestHashSecret(t *testing.T) {
	// SHA-256("abc"), FIPS 180-2's example.
	if got := HashSecret("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("HashSecret(abc) = %s", got)
	}
	if !secretMatches("abc", HashSecret("abc")) || secretMatches("abd", HashSecret("abc")) || secretMatches("abc", "") {
		t.Fatal("secretMatches")
	}
}
