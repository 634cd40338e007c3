package auth

import (
	"crypto/subtle"
	"slices"
)

// InternalUser is the identity a node's own components use to talk to its
// MUPDATE listener (a backend pushing to the master in the same process).
// Its secret is random, made at start and never written anywhere.
const InternalUser = "rookery-internal"

// Policy decides who may log in where, on top of a user source.
type Policy struct {
	Users  *Users
	Admins []string // imapd.conf "admins"
	// Internal is InternalUser's secret; empty disables that identity.
	Internal string
}

// IsAdmin reports whether name is listed in admins.
func (p *Policy) IsAdmin(name string) bool { return slices.Contains(p.Admins, name) }

// AdminLogin checks a SASL PLAIN identity for a listener that admits only
// admins, as Cyrus's mupdate does: the authentication identity must be an
// admin; an admin may name any authorization identity. It returns the
// identity the session acts as.
func (p *Policy) AdminLogin(authzid, authcid, password string) (string, error) {
	if authcid == InternalUser && p.Internal != "" {
		if subtle.ConstantTimeCompare([]byte(password), []byte(p.Internal)) != 1 {
			return "", ErrBadCredentials
		}
		return InternalUser, nil
	}
	if p.Users == nil {
		return "", ErrBadCredentials
	}
	if err := p.Users.Verify(authcid, password); err != nil {
		return "", err
	}
	if !p.IsAdmin(authcid) {
		return "", ErrNotAdmin
	}
	if authzid == "" {
		return authcid, nil
	}
	return authzid, nil
}
