package imap

import (
	"slices"

	"github.com/rookery/rookery/internal/imaplist"
	"github.com/rookery/rookery/internal/mboxname"
	"github.com/rookery/rookery/store/mailstore"
)

// statusItems are the STATUS items this server answers: LIST-STATUS's,
// and IMAP4rev2's DELETED (frontends do not take it: Cyrus 3.6 backends
// do not).
var statusItems = append(slices.Clone(imaplist.StatusItems), "DELETED")

// selectedList writes SELECT's LIST line for the mailbox m, named ext:
// its special use and whether it has children.
func (sess *session) selectedList(ext string, m *mailstore.Mailbox) error {
	attrs := []string{`\HasNoChildren`}
	if err := sess.srv.cfg.Store.Mailboxes(m.Name, func(c mailstore.Mailbox) bool {
		if c.Name != m.Name {
			attrs[0] = `\HasChildren`
			return false
		}
		return true
	}); err != nil {
		return err
	}
	if m.SpecialUse != "" {
		attrs = append(attrs, m.SpecialUse)
	}
	sess.writeList("LIST", attrs, ext)
	return nil
}

// IMAP4rev2 (RFC 9051), for a client that enables it beside IMAP4rev1:
// mailbox names travel in UTF-8 rather than modified UTF-7 (they are
// kept in modified UTF-7, as Cyrus keeps them, and converted at the
// session's edge); \Recent and the RECENT response are gone; SEARCH
// answers with ESEARCH; SELECT tells the mailbox's LIST line and no
// longer UNSEEN; STATUS counts DELETED. The rest of IMAP4rev2 is what
// this server already does for IMAP4rev1 with its extensions.

// fromWire is a mailbox name or pattern as the client sent it, in the
// modified UTF-7 names are kept in. A name that is not UTF-8 is left as
// it is, for the name checks to refuse.
func (sess *session) fromWire(s string) string {
	if !sess.rev2 {
		return s
	}
	if m, ok := mboxname.FromUTF8(s); ok {
		return m
	}
	return s
}

// toWire is how a mailbox name (modified UTF-7) goes to the client.
func (sess *session) toWire(ext string) string {
	if !sess.rev2 {
		return ext
	}
	if u, ok := mboxname.ToUTF8(ext); ok {
		return u
	}
	return ext
}
