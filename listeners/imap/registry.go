package imap

import (
	"context"
	"errors"
)

// MailboxRegistry is where a backend registers its mailbox list: the
// MUPDATE master in a murder (through the backend-pusher), nothing when
// alone. The server calls it for every CREATE, DELETE, RENAME and ACL
// change, in this order:
//
//	create:  Reserve(name), create locally, Activate(name, acl)
//	delete:  Delete(name), delete locally
//	rename:  Reserve(new), rename locally, Activate(new, acl), Delete(old)
//	setacl:  Activate(name, newACL), change locally
//
// and undoes what it did when a later step fails (a failed local create
// after Reserve calls Delete, a failed local delete calls Activate with
// the old ACL, and so on), so that nothing changes locally unless the
// registry agreed. Calls for one mailbox never overlap; the server holds
// a lock across each sequence. Methods may block (the context carries the
// client's patience) and must be safe for concurrent use.
type MailboxRegistry interface {
	// Reserve claims name for this server before it exists here.
	Reserve(ctx context.Context, name string) error
	// Activate publishes name, which exists here, with its ACL; it is
	// also how an ACL change is published.
	Activate(ctx context.Context, name, acl string) error
	// Delete removes name (an active or reserved entry of this server).
	Delete(ctx context.Context, name string) error
}

// Errors a registry returns (wrapped) to choose the client's NO text, in
// the words a Cyrus backend uses. Any other error gives "the mupdate
// operation failed".
var (
	// ErrRegistryUnavailable means the registry cannot be reached: the
	// master is down. Nothing was changed.
	ErrRegistryUnavailable = errors.New("imap: mailbox registry unreachable")
	// ErrRegistryRefused means the registry refused a Reserve: the name is
	// taken, reserved or active elsewhere in the murder.
	ErrRegistryRefused = errors.New("imap: mailbox registry refused the name")
)

// NopRegistry is the registry of a standalone backend: it agrees to
// everything.
type NopRegistry struct{}

// Reserve implements MailboxRegistry.
func (NopRegistry) Reserve(context.Context, string) error { return nil }

// Activate implements MailboxRegistry.
func (NopRegistry) Activate(context.Context, string, string) error { return nil }

// Delete implements MailboxRegistry.
func (NopRegistry) Delete(context.Context, string) error { return nil }

// registryError turns a registry failure into the client's reply.
func registryError(err error) error {
	switch {
	case errors.Is(err, ErrRegistryUnavailable):
		return because(no("no connection to server"), err)
	case errors.Is(err, ErrRegistryRefused):
		return because(no("unable to reserve mailbox on mupdate server"), err)
	}
	return because(no("the mupdate operation failed"), err)
}
