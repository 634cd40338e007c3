package mailstore

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// NameEvent is what happened to a name in a NameChange.
type NameEvent uint8

// The events WatchNames tells of.
const (
	MailboxCreated NameEvent = iota + 1
	MailboxDeleted
	MailboxRenamed
	ACLChanged
	Subscribed
	Unsubscribed
)

// NameChange is one change to the mailbox list or to a user's
// subscriptions.
type NameChange struct {
	Event NameEvent
	Name  string // the mailbox's name after the change (Renamed: the new one)
	// OldName is the name before a rename.
	OldName string
	// ACL is the mailbox's ACL after the change (Deleted: before it);
	// OldACL is the one before (equal to ACL but for ACLChanged).
	ACL, OldACL string
	User        string // Subscribed, Unsubscribed: whose subscription
}

// WatchNames calls fn with the changes of each durable write that
// creates, deletes or renames a mailbox, changes an ACL or changes a
// subscription, in commit order, until the returned cancel is called. fn
// is called from the writer's goroutine: it must not block nor call the
// store. It is how IMAP NOTIFY hears of mailbox and subscription events.
func (s *Store) WatchNames(fn func([]NameChange)) (cancel func()) {
	s.watchMu.Lock()
	s.lastNameWatch++
	id := s.lastNameWatch
	s.nameWatchers[id] = fn
	s.watchMu.Unlock()
	return func() {
		s.watchMu.Lock()
		delete(s.nameWatchers, id)
		s.watchMu.Unlock()
	}
}

// tellNames passes a committed write's name changes on. Holding watchMu
// through the calls keeps them in commit order and lets no call come
// after its watcher's cancel returned.
func (s *Store) tellNames(changes []NameChange) {
	if len(changes) == 0 {
		return
	}
	s.watchMu.Lock()
	for _, fn := range s.nameWatchers {
		fn(changes)
	}
	s.watchMu.Unlock()
}

// subscribed reports whether user is subscribed to mailbox; under the
// write lock it is the state the write changes.
func (s *Store) subscribed(user, mailbox string) (bool, error) {
	_, c, err := s.pdb.Get(subKey(user, mailbox))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("mailstore: subscription: %w", err)
	}
	return true, c.Close()
}
