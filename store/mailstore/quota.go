package mailstore

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// Quota is a quota root's state.
type Quota struct {
	Root  string
	Limit int64 // KiB; -1 means no storage limit
	Used  int64 // bytes
}

// quotaRoot returns the quota root governing name: the record of name
// itself or of its nearest ancestor that is a root; root "" if none.
func (s *Store) quotaRoot(name string) (quotaRecord, error) {
	for n := name; n != ""; {
		key := quotaKey(n)
		v, c, err := s.pdb.Get(key)
		if err == nil {
			q, err := decodeQuota(key, v)
			c.Close()
			return q, err
		}
		if !errors.Is(err, pebble.ErrNotFound) {
			return quotaRecord{}, fmt.Errorf("mailstore: get quota: %w", err)
		}
		i := strings.LastIndexByte(n, '.')
		if i < 0 {
			break
		}
		n = n[:i]
	}
	return quotaRecord{}, nil
}

// QuotaRoot returns the quota governing mailbox name, if any.
func (s *Store) QuotaRoot(name string) (Quota, bool, error) {
	q, err := s.quotaRoot(name)
	if err != nil || q.root == "" {
		return Quota{}, false, err
	}
	return Quota{Root: q.root, Limit: q.limit, Used: q.used}, true, nil
}

// Quota returns the quota root named root, if it is one.
func (s *Store) Quota(root string) (Quota, bool, error) {
	key := quotaKey(root)
	v, c, err := s.pdb.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return Quota{}, false, nil
	}
	if err != nil {
		return Quota{}, false, fmt.Errorf("mailstore: get quota: %w", err)
	}
	defer c.Close()
	q, err := decodeQuota(key, v)
	return Quota{Root: q.root, Limit: q.limit, Used: q.used}, err == nil, err
}

// SetQuota makes root a quota root with a storage limit in KiB (-1: no
// limit, usage still counted), counting the mailboxes under it that no
// deeper root governs; remove drops the root instead.
func (s *Store) SetQuota(root string, limit int64, remove bool) error {
	if err := checkName(root); err != nil {
		return err
	}
	return s.write(func(t *txn) error {
		if remove {
			t.del(quotaKey(root))
			return nil
		}
		q, ok, err := s.Quota(root)
		if err != nil {
			return err
		}
		if ok {
			t.set(quotaKey(root), encodeQuota(&quotaRecord{root: root, limit: limit, used: q.Used}))
			return nil
		}
		var used int64
		var werr error
		err = s.Mailboxes(root, func(m Mailbox) bool {
			r, err := s.quotaRoot(m.Name)
			if err != nil {
				werr = err
				return false
			}
			// A deeper root keeps its own mailboxes.
			if r.root == "" || len(r.root) <= len(root) {
				used += m.Size
			}
			return true
		})
		if err == nil {
			err = werr
		}
		if err != nil {
			return err
		}
		t.set(quotaKey(root), encodeQuota(&quotaRecord{root: root, limit: limit, used: used}))
		return nil
	})
}

// checkQuota refuses adding size bytes under mailbox's root beyond its limit.
func (t *txn) checkQuota(mailbox string, size int64) error {
	q, err := t.s.quotaRoot(mailbox)
	if err != nil {
		return err
	}
	if q.root != "" && q.limit >= 0 && size > 0 && q.used+size > q.limit*1024 {
		return fmt.Errorf("%w: %q", ErrOverQuota, q.root)
	}
	return nil
}

// addUsage adds delta bytes to the usage of mailbox's root, seeing the
// earlier changes of the same txn.
func (t *txn) addUsage(mailbox string, delta int64) error {
	if delta == 0 {
		return nil
	}
	q, err := t.s.quotaRoot(mailbox)
	if err != nil || q.root == "" {
		return err
	}
	if t.usage == nil {
		t.usage = make(map[string]*quotaRecord)
	}
	if p, ok := t.usage[q.root]; ok {
		q = *p
	}
	q.used += delta
	t.usage[q.root] = &q
	t.set(quotaKey(q.root), encodeQuota(&q))
	return nil
}

// Subscribe adds mailbox to user's subscriptions (whether it exists or
// not, as IMAP allows).
func (s *Store) Subscribe(user, mailbox string) error {
	return s.write(func(t *txn) error {
		if on, err := s.subscribed(user, mailbox); err != nil || on {
			return err
		}
		t.set(subKey(user, mailbox), nil)
		t.names = append(t.names, NameChange{Event: Subscribed, Name: mailbox, User: user})
		return nil
	})
}

// Unsubscribe removes mailbox from user's subscriptions.
func (s *Store) Unsubscribe(user, mailbox string) error {
	return s.write(func(t *txn) error {
		if on, err := s.subscribed(user, mailbox); err != nil || !on {
			return err
		}
		t.del(subKey(user, mailbox))
		t.names = append(t.names, NameChange{Event: Unsubscribed, Name: mailbox, User: user})
		return nil
	})
}

// Subscriptions returns user's subscribed mailbox names in byte order.
func (s *Store) Subscriptions(user string) ([]string, error) {
	lo, hi := subBounds(user)
	it, err := s.pdb.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, fmt.Errorf("mailstore: subscriptions: %w", err)
	}
	var names []string
	for ok := it.First(); ok; ok = it.Next() {
		names = append(names, string(it.Key()[len(lo):]))
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("mailstore: subscriptions: %w", err)
	}
	return names, nil
}
