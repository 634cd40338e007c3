package imapproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/listeners/frontend"
	"github.com/rookery/rookery/store"
)

// INBOXCheck checks a password by logging in as the user (AUTHENTICATE
// PLAIN, no authorization id) at the backend that holds the user's INBOX,
// then logging out. It serves deployments whose users live in a Cyrus
// backend's sasldb rather than in the frontend's users file, as saslauthd's
// rimap mechanism serves Cyrus frontends.
type INBOXCheck struct {
	// DB is the node's mailbox list, where the INBOX is looked up.
	DB *store.DB
	// Resolve maps the INBOX's server to its IMAP address; nil means
	// frontend.CyrusResolve.
	Resolve frontend.Resolver
	// Timeout bounds one check, connection to logout; 0 means 10 s.
	Timeout time.Duration
	// TLS is how backends' STARTTLS is taken up, as Config.BackendTLS.
	TLS *tls.Config
}

// Verify implements auth.Checker. A user without an INBOX, or whose
// password the backend refuses, gets auth.ErrBadCredentials; a backend
// that cannot be asked gets another error.
func (c *INBOXCheck) Verify(name, password string) error {
	e, err := (&frontend.Table{DB: c.DB}).LookupNoKick(frontend.UserInbox(name))
	if errors.Is(err, frontend.ErrNoMailbox) {
		return fmt.Errorf("%w: no INBOX in the mailbox list", auth.ErrBadCredentials)
	}
	if err != nil {
		return fmt.Errorf("INBOX check: %w", err)
	}
	server := e.Server()
	resolve := c.Resolve
	if resolve == nil {
		resolve = frontend.CyrusResolve
	}
	addr, _, _, ok := resolve(server)
	if !ok {
		return fmt.Errorf("INBOX check: backend %s has no known address", server)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	b, err := dialBackend(ctx, server, addr, c.TLS, "", name, password, timeout, timeout)
	if errors.Is(err, errLoginRefused) {
		return fmt.Errorf("%w: refused by INBOX backend %s", auth.ErrBadCredentials, server)
	}
	if err != nil {
		return fmt.Errorf("INBOX check: %w", err)
	}
	b.logout()
	return nil
}
