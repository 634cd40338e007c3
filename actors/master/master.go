// Package master is the mupdate-master actor: it turns MUPDATE write
// commands into mailbox-list updates under the rules a Cyrus 3.6 master
// applies (RFC 3656 plus Cyrus's own choices), minus Cyrus's crashes.
//
// It depends on mailbox-db's message protocol: every role writes the list
// through that one actor, so the dependency runs one way only.
package master

import (
	"errors"
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/rookery/rookery/actors/mailboxdb"
	"github.com/rookery/rookery/store"
)

// Refusals, returned in mailboxdb.UpdateReply.Err. Their texts are the
// ones Cyrus puts in its NO replies.
var (
	ErrExists    = errors.New("mailbox already exists")
	ErrNotActive = errors.New("mailbox not currently active")
	ErrNoMailbox = errors.New("mailbox doesn't exist")
	ErrBadName   = errors.New("invalid mailbox name")
)

// Reserve asks to hold a name for a location before the backend creates
// it (RFC 3656 4.5). Sent by MUPDATE sessions; reply *mailboxdb.UpdateReply.
type Reserve struct{ Name, Location string }

// Activate creates or overwrites an entry as active (RFC 3656 4.2). Sent by
// MUPDATE sessions; reply *mailboxdb.UpdateReply.
type Activate struct{ Name, Location, ACL string }

// Deactivate turns an active entry back into a reservation (RFC 3656 4.3).
// Sent by MUPDATE sessions; reply *mailboxdb.UpdateReply.
type Deactivate struct{ Name, Location string }

// Delete removes an entry (RFC 3656 4.4). Sent by MUPDATE sessions; reply
// *mailboxdb.UpdateReply.
type Delete struct{ Name string }

// Config is what the actor needs.
type Config struct {
	// DB is the mailbox-db actor.
	DB *actor.PID
	// Conflict, if set, is called for each RESERVE refused because another
	// location holds the name (for metrics). It runs inside mailbox-db: it
	// must be quick and must not block.
	Conflict func()
	Logger   *slog.Logger
}

// Props makes the actor's props.
func Props(cfg Config) *actor.Props {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return actor.PropsFromProducer(func() actor.Actor { return &master{cfg: cfg} })
}

type master struct{ cfg Config }

func (a *master) Receive(ctx actor.Context) {
	var u *mailboxdb.Update
	switch m := ctx.Message().(type) {
	case *Reserve:
		u = &mailboxdb.Update{Name: m.Name, Decide: a.reserve(m)}
	case *Activate:
		u = &mailboxdb.Update{Name: m.Name, Decide: activate(m)}
	case *Deactivate:
		u = &mailboxdb.Update{Name: m.Name, Decide: deactivate(m)}
	case *Delete:
		u = &mailboxdb.Update{Name: m.Name, Decide: deleteEntry}
	default:
		return
	}
	if store.CheckName(u.Name) != nil {
		// Cyrus accepts an empty name and then serves garbage from LIST;
		// names with the bytes the list uses as separators cannot be kept.
		ctx.Respond(&mailboxdb.UpdateReply{Err: ErrBadName})
		return
	}
	// mailbox-db answers the session directly, so the master never waits.
	ctx.RequestWithCustomSender(a.cfg.DB, u, ctx.Sender())
}

func (a *master) reserve(m *Reserve) func(*store.Entry) (*store.Entry, error) {
	return func(cur *store.Entry) (*store.Entry, error) {
		if cur != nil && cur.Location != m.Location {
			// Two backends claiming one name: the first claim stands, and an
			// operator should hear about it.
			a.cfg.Logger.Warn("mailbox reservation refused: held elsewhere",
				"mailbox", m.Name, "held_by", cur.Location, "wanted_by", m.Location, "kind", cur.Kind.String())
			if a.cfg.Conflict != nil {
				a.cfg.Conflict()
			}
			return nil, ErrExists
		}
		// Same location: a backend reserving twice (Cyrus demotes an active
		// entry to a reservation here, and replicated backends rely on it).
		return &store.Entry{Kind: store.Reserved, Location: m.Location}, nil
	}
}

func activate(m *Activate) func(*store.Entry) (*store.Entry, error) {
	return func(*store.Entry) (*store.Entry, error) {
		return &store.Entry{Kind: store.Active, Location: m.Location, ACL: m.ACL}, nil
	}
}

func deactivate(m *Deactivate) func(*store.Entry) (*store.Entry, error) {
	return func(cur *store.Entry) (*store.Entry, error) {
		switch {
		case cur == nil:
			return nil, ErrNotActive
		case cur.Kind == store.Active:
			return &store.Entry{Kind: store.Reserved, Location: m.Location}, nil
		case cur.Location == m.Location:
			// A second deactivation by the same holder (Cyrus aborts here).
			return cur, nil
		default:
			return nil, ErrNotActive
		}
	}
}

func deleteEntry(cur *store.Entry) (*store.Entry, error) {
	if cur == nil {
		return nil, ErrNoMailbox
	}
	return nil, nil
}
