package mailstore

import (
	"bytes"
	"context"
	"io"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/rookery/rookery/internal/record"
)

// countKeys counts the keys of one family.
func countKeys(t *testing.T, s *Store, prefix byte) int {
	t.Helper()
	it, err := s.pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	return n
}

func deliver(t *testing.T, s *Store, mailbox string, n int) [][]byte {
	t.Helper()
	var bodies [][]byte
	for i := range n {
		b := message(3*chunkSize/2, uint64(i+100))
		if _, err := s.Deliver(context.Background(), mailbox, nil, time.Now(), bytes.NewReader(b), 0); err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, b)
	}
	return bodies
}

// find reads the messages Find gives for uids through a new view.
func find(t *testing.T, s *Store, id uint64, uids ...uint32) map[uint32][]byte {
	t.Helper()
	v := s.View()
	defer v.Close()
	got := map[uint32][]byte{}
	if err := v.Find(id, uids, func(m *Message, _ bool) bool {
		b := v.OpenBody(m)
		data, err := io.ReadAll(b)
		b.Close()
		if err != nil {
			t.Fatalf("uid %d: %v", m.UID, err)
		}
		got[m.UID] = data
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestPinHoldsExpungedUntilTold(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	mb, err := s.CreateMailbox("user.alice", "", "")
	if err != nil {
		t.Fatal(err)
	}
	bodies := deliver(t, s, "user.alice", 3)
	bodiesBefore := countKeys(t, s, prefixBody)

	// No session: an expunge frees the body at once.
	if _, err := s.Expunge(mb.ID, []uint32{3}); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, s, prefixBody); n != bodiesBefore-1 || countKeys(t, s, prefixHeld) != 0 {
		t.Fatalf("unpinned expunge: %d bodies (want %d), %d held", n, bodiesBefore-1, countKeys(t, s, prefixHeld))
	}

	p1, p2 := s.Pin(mb.ID), s.Pin(mb.ID)
	mb, _, _ = s.Mailbox("user.alice")
	if err := p1.Advance(mb.HighestModSeq); err != nil {
		t.Fatal(err)
	}
	if err := p2.Advance(mb.HighestModSeq); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(mb.ID, []uint32{1, 2}); err != nil {
		t.Fatal(err)
	}
	got := find(t, s, mb.ID, 1, 2, 3)
	if len(got) != 2 || !bytes.Equal(got[1], bodies[0]) || !bytes.Equal(got[2], bodies[1]) {
		t.Fatalf("held messages: found uids %v", keys(got))
	}
	// Messages keeps to live ones.
	if err := s.Messages(mb.ID, 1, 10, func(m *Message) bool { t.Errorf("live uid %d", m.UID); return true }); err != nil {
		t.Fatal(err)
	}
	mb, _, _ = s.Mailbox("user.alice")
	// One session told: the other still needs them.
	if err := p1.Advance(mb.HighestModSeq); err != nil {
		t.Fatal(err)
	}
	if len(find(t, s, mb.ID, 1, 2)) != 2 {
		t.Fatal("released while a pin still needs them")
	}
	if err := p2.Release(); err != nil {
		t.Fatal(err)
	}
	if got := find(t, s, mb.ID, 1, 2); len(got) != 0 || countKeys(t, s, prefixHeld) != 0 {
		t.Fatalf("after every pin: found %v, %d held", keys(got), countKeys(t, s, prefixHeld))
	}
	if n := countKeys(t, s, prefixBody); n != bodiesBefore-3 {
		t.Fatalf("%d bodies left, want %d", n, bodiesBefore-3)
	}
	if err := p1.Release(); err != nil {
		t.Fatal(err)
	}
}

func keys(m map[uint32][]byte) []uint32 {
	var out []uint32
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestHeldReleasedAtOpenAndDelete(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	mb, _ := s.CreateMailbox("user.alice", "", "")
	deliver(t, s, "user.alice", 2)
	s.Pin(mb.ID)
	if _, err := s.Expunge(mb.ID, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	if countKeys(t, s, prefixHeld) != 1 {
		t.Fatal("not held")
	}
	s.Close()
	s = open(t, dir)
	if countKeys(t, s, prefixHeld) != 0 || countKeys(t, s, prefixBody) != 1 {
		t.Fatalf("after reopen: %d held, %d bodies", countKeys(t, s, prefixHeld), countKeys(t, s, prefixBody))
	}
	s.Pin(mb.ID)
	if _, err := s.Expunge(mb.ID, []uint32{2}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMailbox("user.alice"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []byte{prefixHeld, prefixBody, prefixChunk, prefixChange, prefixMessage} {
		if n := countKeys(t, s, p); n != 0 {
			t.Errorf("family %c: %d keys left after delete", p, n)
		}
	}
	s.Close()
}

func TestChanges(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	mb, _ := s.CreateMailbox("user.alice", "", "")
	deliver(t, s, "user.alice", 4)
	mb, _, _ = s.Mailbox("user.alice")
	since := mb.HighestModSeq
	if _, err := s.SetFlags(mb.ID, []uint32{2}, FlagsAdd, []string{`\Seen`}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(mb.ID, []uint32{3}); err != nil {
		t.Fatal(err)
	}
	deliver(t, s, "user.alice", 1)
	v := s.View()
	defer v.Close()
	var got []Change
	if err := v.Changes(mb.ID, since, func(c Change) bool { got = append(got, c); return true }); err != nil {
		t.Fatal(err)
	}
	want := []Change{{2, since + 1, false}, {3, since + 2, true}, {5, since + 3, false}}
	if len(got) != len(want) {
		t.Fatalf("changes %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("changes %+v, want %+v", got, want)
		}
	}
}

func TestUpgradeFromFormat1(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	mb, _ := s.CreateMailbox("user.alice", "", "")
	deliver(t, s, "user.alice", 3)
	// Make it look like a format 1 store: no change index.
	_, hi := changeBounds(mb.ID, 0)
	if err := s.pdb.DeleteRange(changeKey(mb.ID, 0, 0), hi, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := s.pdb.Set(sysFormat, record.Uvarint(nil, 1), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dir)
	defer s.Close()
	v := s.View()
	defer v.Close()
	n := 0
	if err := v.Changes(mb.ID, 0, func(Change) bool { n++; return true }); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("%d changes indexed after the upgrade, want 3", n)
	}
	if f, _, _ := s.getUvarint(sysFormat); f != storeFormat {
		t.Fatalf("format %d after the upgrade", f)
	}
}

func TestClaimRecent(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	mb, _ := s.CreateMailbox("user.alice", "", "")
	if before, err := s.ClaimRecent(mb.ID, 5); err != nil || before != 0 {
		t.Fatalf("first claim: %d %v", before, err)
	}
	if before, err := s.ClaimRecent(mb.ID, 3); err != nil || before != 5 {
		t.Fatalf("lower claim: %d %v", before, err)
	}
	if before, err := s.ClaimRecent(mb.ID, 9); err != nil || before != 5 {
		t.Fatalf("higher claim: %d %v", before, err)
	}
	if r, _ := s.RecentUID(mb.ID); r != 9 {
		t.Fatalf("recent uid %d", r)
	}
}

// TestHeldBelowReclaimed: reclaims start where the held records left
// start; a later expunge of a lower UID still gets its record reclaimed
// and its body freed, with kept records in between.
func TestHeldBelowReclaimed(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	mb, err := s.CreateMailbox("user.alice", "", "")
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, s, "user.alice", 6)
	bodiesBefore := countKeys(t, s, prefixBody)
	told, late := s.Pin(mb.ID), s.Pin(mb.ID)
	tell := func(p *Pin) {
		t.Helper()
		mb, _, _ := s.Mailbox("user.alice")
		if err := p.Advance(mb.HighestModSeq); err != nil {
			t.Fatal(err)
		}
	}
	expunge := func(uids ...uint32) {
		t.Helper()
		if _, err := s.Expunge(mb.ID, uids); err != nil {
			t.Fatal(err)
		}
	}
	expunge(5, 6)
	tell(told)
	tell(late)
	if n := countKeys(t, s, prefixHeld); n != 0 {
		t.Fatalf("%d held after both pins were told of 5 and 6", n)
	}
	expunge(4) // kept: late is not told
	tell(told)
	expunge(2) // below both
	tell(told)
	if got := find(t, s, mb.ID, 2, 4); len(got) != 2 {
		t.Fatalf("held for the late pin: found %v", keys(got))
	}
	tell(late)
	if got := find(t, s, mb.ID, 2, 4); len(got) != 0 || countKeys(t, s, prefixHeld) != 0 {
		t.Fatalf("after every pin was told: found %v, %d held", keys(got), countKeys(t, s, prefixHeld))
	}
	if n := countKeys(t, s, prefixBody); n != bodiesBefore-4 {
		t.Fatalf("%d body keys left of %d", n, bodiesBefore)
	}
}

// TestFloorNotForOlderViews: the floor a scan finds after an expunge
// shortens later scans but never hides a message from a view opened
// before that expunge.
func TestFloorNotForOlderViews(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	mb, err := s.CreateMailbox("user.alice", "", "")
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, s, "user.alice", 5)
	uidsOf := func(v *View) []uint32 {
		t.Helper()
		m, _, err := v.MailboxByID(mb.ID)
		if err != nil {
			t.Fatal(err)
		}
		l, err := v.UIDs(m)
		if err != nil {
			t.Fatal(err)
		}
		return l.UIDs
	}
	old := s.View()
	defer old.Close()
	if _, err := s.Expunge(mb.ID, []uint32{1, 2}); err != nil {
		t.Fatal(err)
	}
	now := s.View()
	if got := uidsOf(now); !slices.Equal(got, []uint32{3, 4, 5}) {
		t.Fatalf("after the expunge: %v", got)
	}
	now.Close()
	if got := uidsOf(old); !slices.Equal(got, []uint32{1, 2, 3, 4, 5}) {
		t.Errorf("view from before the expunge: %v", got)
	}
	deliver(t, s, "user.alice", 1)
	var live []uint32
	if err := s.Messages(mb.ID, 1, 10, func(m *Message) bool { live = append(live, m.UID); return true }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(live, []uint32{3, 4, 5, 6}) {
		t.Errorf("live messages: %v", live)
	}
	if s.floorAt(mb.ID, math.MaxUint64) != 3 {
		t.Errorf("floor %d, want 3", s.floorAt(mb.ID, math.MaxUint64))
	}
}
