package imap

import (
	"strconv"
	"time"

	"github.com/rookery/rookery/store/mailstore"
)

// OBJECTID (RFC 8474): ids that survive what UIDs and names do not. A
// mailbox's MAILBOXID is its store id, kept through RENAME and never
// given to another mailbox; a message's EMAILID is its body's id, which
// its copies and moves share, as the RFC wants. THREADID is NIL: this
// server keeps no threads between commands (THREAD computes them).

func mailboxID(m *mailstore.Mailbox) string { return "M" + strconv.FormatUint(m.ID, 36) }

func emailID(m *mailstore.Message) string { return "E" + strconv.FormatUint(m.BodyID(), 36) }

// saveDate is when m came into its mailbox, for the SAVED* search keys:
// its internal date where the store did not keep one (RFC 8514 4.2 lets
// a server use it).
func saveDate(m *mailstore.Message) time.Time {
	if m.SaveDate.IsZero() {
		return m.InternalDate
	}
	return m.SaveDate
}
