package auth

import (
	"errors"
	"slices"
)

// ErrNotAuthorized is returned when an authenticated user asks to act as
// another identity without being allowed to.
var ErrNotAuthorized = errors.New("auth: not authorized to act as another user")

// Identity is who a mail session (IMAP, POP3, LMTP) acts as once logged in.
type Identity struct {
	User string // the user whose rights apply
	// Admin is set for an admin, logged in as itself or through a
	// frontend (a proxy server acting for an admin); a proxy server is
	// never an admin by being one.
	Admin bool
	// Proxy is the authentication identity when it differs from User
	// (a frontend logged in for a user); empty otherwise.
	Proxy string
}

// MailPolicy is the login rule set of a mail listener, as Cyrus's
// backends apply it: users in ProxyServers may give an authorization
// identity and then act as that user; nobody else may.
type MailPolicy struct {
	Users        Checker
	Admins       []string // imapd.conf "admins"
	ProxyServers []string // imapd.conf "proxyservers"
}

// Login checks SASL PLAIN-style credentials. An empty authzid, or one equal
// to authcid, logs authcid in as itself.
func (p *MailPolicy) Login(authzid, authcid, password string) (Identity, error) {
	if p.Users == nil {
		return Identity{}, ErrBadCredentials
	}
	if err := p.Users.Verify(authcid, password); err != nil {
		return Identity{}, err
	}
	if authzid == "" || authzid == authcid {
		return Identity{User: authcid, Admin: slices.Contains(p.Admins, authcid)}, nil
	}
	if !slices.Contains(p.ProxyServers, authcid) {
		return Identity{}, ErrNotAuthorized
	}
	// As in Cyrus: the frontend vouches for the user, so an admin logged
	// in through a frontend is an admin on the backend too (otherwise no
	// admin could create a top-level mailbox through a frontend).
	return Identity{User: authzid, Proxy: authcid, Admin: slices.Contains(p.Admins, authzid)}, nil
}
