// Package frontend is what the frontend's listeners (IMAP, POP3, LMTP) share
// to find where a mailbox lives: its entry in the node's mailbox list, the
// backend server named in its location, and that server's addresses.
package frontend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/rookery/rookery/store"
)

// Resolver maps a backend's server name (a location up to its '!') to the
// addresses of its IMAP, POP3 and LMTP services; ok is false for a server
// it does not know.
type Resolver func(server string) (imap, pop3, lmtp string, ok bool)

// Standard ports of a server name without a port (Cyrus: the imap, pop3
// and lmtp services; lmtp 2003 is Cyrus's convention).
const (
	IMAPPort = "143"
	POP3Port = "110"
	LMTPPort = "2003"
)

// CyrusResolve follows the Cyrus convention for server names
// ("host[:port][/tls][/noauth]"): "host:port" sends every protocol to that
// one port, a bare "host" uses the standard ports. As in Cyrus, options
// follow a port: "/tls" (STARTTLS before logging in, see WantsTLS) is
// understood, "/noauth" is not; names with it, and UNIX socket paths,
// resolve to nothing.
func CyrusResolve(server string) (imap, pop3, lmtp string, ok bool) {
	if name, opts, found := strings.Cut(server, "/"); found && name != "" && strings.Contains(name, ":") {
		for _, o := range strings.Split(opts, "/") {
			if o != "tls" {
				return "", "", "", false
			}
		}
		server = name
	}
	if server == "" || strings.Contains(server, "/") {
		return "", "", "", false
	}
	if host, port, err := net.SplitHostPort(server); err == nil {
		if host == "" || port == "" {
			return "", "", "", false
		}
		return server, server, server, true
	}
	if strings.Contains(server, ":") { // a bare IPv6 address
		server = "[" + strings.Trim(server, "[]") + "]"
	}
	return server + ":" + IMAPPort, server + ":" + POP3Port, server + ":" + LMTPPort, true
}

// WantsTLS reports whether a server name asks for TLS to the server
// ("host:port/tls", Cyrus's spelling): the frontend then takes up the
// backend's STARTTLS before logging in, and does not log in without it.
func WantsTLS(server string) bool {
	name, opts, found := strings.Cut(server, "/")
	return found && strings.Contains(name, ":") && slices.Contains(strings.Split(opts, "/"), "tls")
}

// Lookup errors. Listeners show clients Cyrus's texts for them
// ("Mailbox does not exist", "Mailbox is currently reserved").
var (
	ErrNoMailbox = errors.New("frontend: mailbox does not exist")
	ErrReserved  = errors.New("frontend: mailbox is currently reserved")
)

// Table looks mailboxes up in the node's mailbox list.
type Table struct {
	DB *store.DB
	// Kick, if set, asks the node's replica to catch up with its master
	// and returns once it has; Lookup calls it once when a name is
	// missing, as Cyrus frontends kick their mupdate slave.
	Kick func(context.Context) error
}

// Lookup returns the active entry named name (a Cyrus internal name),
// kicking the replica once if it is missing. A reserved entry (a mailbox
// being created or moved) gives ErrReserved.
func (t *Table) Lookup(ctx context.Context, name string) (store.Entry, error) {
	e, err := t.get(name)
	if errors.Is(err, ErrNoMailbox) && t.Kick != nil {
		if kerr := t.Kick(ctx); kerr == nil {
			e, err = t.get(name)
		}
	}
	return e, err
}

// LookupNoKick is Lookup without the kick, for paths where Cyrus does not
// kick either (POP3's INBOX).
func (t *Table) LookupNoKick(name string) (store.Entry, error) { return t.get(name) }

func (t *Table) get(name string) (store.Entry, error) {
	e, found, err := t.DB.Get(name)
	switch {
	case err != nil:
		return store.Entry{}, fmt.Errorf("frontend: %w", err)
	case !found:
		return store.Entry{}, ErrNoMailbox
	case e.Kind != store.Active:
		return store.Entry{}, ErrReserved
	}
	return e, nil
}

// UserInbox returns the internal name of user's INBOX in Cyrus's default
// namespace with '.' as separator: "user.<user>", a '.' in the user name
// stored as '^'.
func UserInbox(user string) string {
	return "user." + strings.ReplaceAll(user, ".", "^")
}
