// Package auth identifies who is calling (SPEC §8): API keys kept as hashes
// in the store, or JWTs signed by an identity provider whose public keys
// are in a JWKS file. It answers "who is this and what role do they hold";
// the gateway decides what each role may reach.
package auth

import (
	"errors"
	"slices"
)

// The four roles (SPEC §8). Admin may do everything.
const (
	RoleClinician = "clinician"
	RoleService   = "service"
	RoleAuditor   = "auditor"
	RoleAdmin     = "admin"
)

// Roles lists the valid roles, for validation and help texts.
func Roles() []string {
	return []string{RoleClinician, RoleService, RoleAuditor, RoleAdmin}
}

// ValidRole reports whether r is one of the four roles (exact spelling).
func ValidRole(r string) bool { return slices.Contains(Roles(), r) }

// How a principal was identified.
const (
	KindKey       = "key"
	KindJWT       = "jwt"
	KindAnonymous = "anonymous"
)

// ErrNoCredentials reports a request without an Authorization header: the
// server answers 401 with `WWW-Authenticate: Bearer`.
var ErrNoCredentials = errors.New("auth: no credentials")

// ErrInvalidCredentials reports credentials that were given but are not
// accepted (malformed, unknown, revoked, expired, badly signed…). The
// server answers 401 with `WWW-Authenticate: Bearer error="invalid_token"`.
// Wrapped errors add a reason for logs; none contains the token.
var ErrInvalidCredentials = errors.New("auth: invalid credentials")

// Principal is the authenticated caller.
type Principal struct {
	ID     string // API key id, "jwt:"+subject, or "anonymous"
	Role   string // one of the four roles; "" for anonymous
	Kind   string // KindKey, KindJWT or KindAnonymous
	Limits string // the key's rate-limit overrides ("" = the zones' defaults)
}

// Anonymous is the principal of a request without credentials where the
// server lets such requests through (auth off, health probes); it holds no
// role, so Can refuses it everything.
func Anonymous() Principal { return Principal{ID: "anonymous", Kind: KindAnonymous} }

// Can reports whether p may act in one of roles: admin may do everything,
// anyone else only what names their role.
func (p Principal) Can(roles ...string) bool {
	if p.Role == RoleAdmin {
		return true
	}
	return p.Role != "" && slices.Contains(roles, p.Role)
}
