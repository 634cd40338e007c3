package mailstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{Summarize: func(r io.Reader) ([]byte, error) {
		n, err := io.Copy(io.Discard, r)
		return []byte(strings.Repeat("x", int(n%7))), err
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func message(size int, seed uint64) []byte {
	var b bytes.Buffer
	b.WriteString("Subject: test\r\nFrom: a@example.com\r\n\r\n")
	r := rand.New(rand.NewPCG(seed, 1))
	for b.Len() < size {
		b.WriteByte(byte('a' + r.IntN(26)))
		if r.IntN(70) == 0 {
			b.WriteString("\r\n")
		}
	}
	return b.Bytes()[:max(size, 38)]
}

func readBody(t *testing.T, s *Store, m *Message) []byte {
	t.Helper()
	b := s.OpenBody(m)
	defer b.Close()
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestMessagesSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	mb, err := s.CreateMailbox("user.alice", "alice\tlrswipkxtecda\t", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateMailbox("user.alice", "", ""); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	sizes := []int{40, 1000, chunkSize, chunkSize + 1, 3*chunkSize + 17, 2<<20 + 5}
	var bodies [][]byte
	for i, n := range sizes {
		body := message(n, uint64(i))
		bodies = append(bodies, body)
		uid, err := s.Deliver(context.Background(), "user.alice", []string{`\Seen`}, time.Unix(1700000000, 0).In(time.FixedZone("", 3600)), bytes.NewReader(body), 0)
		if err != nil {
			t.Fatal(err)
		}
		if uid != uint32(i+1) {
			t.Fatalf("uid %d, want %d", uid, i+1)
		}
	}
	if _, err := s.SetFlags(mb.ID, []uint32{2, 3}, FlagsAdd, []string{`\Flagged`, "$Work"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, dir)
	defer s.Close()
	got, ok, err := s.Mailbox("user.alice")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if got.UIDNext != uint32(len(sizes)+1) || got.Exists != uint32(len(sizes)) || got.UIDValidity != mb.UIDValidity {
		t.Fatalf("mailbox after reopen: %+v", got)
	}
	if !slices.Contains(got.Keywords, "$Work") {
		t.Errorf("keywords %v lack $Work", got.Keywords)
	}
	var msgs []Message
	if err := s.Messages(got.ID, 1, ^uint32(0), func(m *Message) bool { msgs = append(msgs, *m); return true }); err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(sizes) {
		t.Fatalf("%d messages", len(msgs))
	}
	for i, m := range msgs {
		if !bytes.Equal(readBody(t, s, &m), bodies[i]) {
			t.Errorf("message %d: body differs", m.UID)
		}
		if m.HeaderSize != 38 {
			t.Errorf("message %d: header size %d", m.UID, m.HeaderSize)
		}
		if _, off := m.InternalDate.Zone(); off != 3600 || m.InternalDate.Unix() != 1700000000 {
			t.Errorf("message %d: date %v", m.UID, m.InternalDate)
		}
		want := []string{`\Seen`}
		if i == 1 || i == 2 {
			want = append(want, `\Flagged`, "$Work")
		}
		if !slices.Equal(m.Flags, want) {
			t.Errorf("message %d: flags %v want %v", m.UID, m.Flags, want)
		}
		sum, err := s.Summary(&m)
		if err != nil || len(sum) != len(bodies[i])%7 {
			t.Errorf("message %d: summary %q %v", m.UID, sum, err)
		}
	}
	// Seek into the middle of a chunked body.
	b := s.OpenBody(&msgs[4])
	if _, err := b.Seek(chunkSize+5, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	part := make([]byte, chunkSize)
	if _, err := io.ReadFull(b, part); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if !bytes.Equal(part, bodies[4][chunkSize+5:2*chunkSize+5]) {
		t.Error("seek read differs")
	}
}

func TestCopyMoveExpungeAndQuota(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	inbox, _ := s.CreateMailbox("user.bob", "", "")
	if _, err := s.CreateMailbox("user.bob.Archive", "", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.SetQuota("user.bob", 10, false); err != nil { // 10 KiB
		t.Fatal(err)
	}
	body := message(4000, 1)
	for i := 0; i < 2; i++ {
		if _, err := s.Deliver(ctx, "user.bob", nil, time.Now(), bytes.NewReader(body), 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Deliver(ctx, "user.bob.Archive", nil, time.Now(), bytes.NewReader(body), 0); !errors.Is(err, ErrOverQuota) {
		t.Fatalf("third delivery: %v", err)
	}
	q, ok, err := s.QuotaRoot("user.bob.Archive")
	if err != nil || !ok || q.Root != "user.bob" || q.Used != 8000 {
		t.Fatalf("quota root %+v %v %v", q, ok, err)
	}
	if _, err := s.Copy(inbox.ID, []uint32{1}, "user.bob.Archive"); !errors.Is(err, ErrOverQuota) {
		t.Fatalf("copy over quota: %v", err)
	}
	res, err := s.Move(inbox.ID, []uint32{1, 9}, "user.bob.Archive")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.SourceUIDs, []uint32{1}) || !slices.Equal(res.DestUIDs, []uint32{1}) {
		t.Fatalf("move result %+v", res)
	}
	arch, _, _ := s.Mailbox("user.bob.Archive")
	m, ok, err := s.Message(arch.ID, 1)
	if err != nil || !ok || !bytes.Equal(readBody(t, s, &m), body) {
		t.Fatalf("moved message: %v %v", ok, err)
	}
	q, _, _ = s.Quota("user.bob")
	if q.Used != 8000 {
		t.Fatalf("usage after move %d", q.Used)
	}
	// A move within one mailbox gives new UIDs, even at the quota limit.
	res, err = s.Move(arch.ID, []uint32{1}, "user.bob.Archive")
	if err != nil || !slices.Equal(res.SourceUIDs, []uint32{1}) || !slices.Equal(res.DestUIDs, []uint32{2}) {
		t.Fatalf("move within a mailbox: %+v %v", res, err)
	}
	arch, _, _ = s.Mailbox("user.bob.Archive")
	if _, ok, _ := s.Message(arch.ID, 1); ok || arch.Exists != 1 || arch.UIDNext != 3 || arch.Size != int64(len(body)) {
		t.Fatalf("after a move within a mailbox: old UID kept %v, %+v", ok, arch)
	}
	if q, _, _ = s.Quota("user.bob"); q.Used != 8000 {
		t.Fatalf("usage after a move within a mailbox %d", q.Used)
	}
	if _, err := s.Move(arch.ID, []uint32{2}, "user.bob.Archive"); err != nil {
		t.Fatal(err)
	}
	if m, ok, err = s.Message(arch.ID, 3); err != nil || !ok || !bytes.Equal(readBody(t, s, &m), body) {
		t.Fatalf("message moved within its mailbox: %v %v", ok, err)
	}
	if err := s.SetQuota("user.bob", -1, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Copy(arch.ID, []uint32{3}, "user.bob"); err != nil {
		t.Fatal(err)
	}
	// The copy shares its body; expunging the original keeps it.
	if got, err := s.Expunge(arch.ID, []uint32{3}); err != nil || !slices.Equal(got, []uint32{3}) {
		t.Fatalf("expunge: %v %v", got, err)
	}
	m, ok, err = s.Message(inbox.ID, 3)
	if err != nil || !ok || !bytes.Equal(readBody(t, s, &m), body) {
		t.Fatalf("copy after expunge of original: %v %v", ok, err)
	}
	q, _, _ = s.Quota("user.bob")
	if q.Used != 8000 {
		t.Fatalf("usage after copy+expunge %d", q.Used)
	}
	if err := s.DeleteMailbox("user.bob"); err != nil {
		t.Fatal(err)
	}
	q, _, _ = s.Quota("user.bob")
	if q.Used != 0 {
		t.Fatalf("usage after delete %d", q.Used)
	}
	// Every body is gone with its last reference.
	it, _ := s.pdb.NewIter(nil)
	for ok := it.First(); ok; ok = it.Next() {
		if k := it.Key(); k[0] == prefixBody || k[0] == prefixChunk {
			t.Errorf("left over key %q", k)
		}
	}
	it.Close()
}

func TestRenameWatchSubscriptions(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	mb, _ := s.CreateMailbox("user.carol.a", "", "")
	ch, cancel := s.Watch(mb.ID)
	defer cancel()
	if err := s.RenameMailbox("user.carol.a", "user.carol.b"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deliver(context.Background(), "user.carol.b", nil, time.Now(), strings.NewReader("S: x\r\n\r\nhi\r\n"), 0); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("no wake-up")
	}
	got, ok, _ := s.MailboxByID(mb.ID)
	if !ok || got.Name != "user.carol.b" || got.UIDValidity != mb.UIDValidity || got.Exists != 1 {
		t.Fatalf("after rename: %+v", got)
	}
	if _, ok, _ := s.Mailbox("user.carol.a"); ok {
		t.Fatal("old name still there")
	}
	for _, n := range []string{"user.carol.b", "shared.x", "user.carol"} {
		if err := s.Subscribe("carol", n); err != nil {
			t.Fatal(err)
		}
	}
	_ = s.Unsubscribe("carol", "shared.x")
	_ = s.Subscribe("carolx", "nope")
	subs, err := s.Subscriptions("carol")
	if err != nil || !slices.Equal(subs, []string{"user.carol", "user.carol.b"}) {
		t.Fatalf("subscriptions %v %v", subs, err)
	}
	// Cyrus order: a mailbox is followed by its children.
	for _, n := range []string{"user.carol", "user.carol-x", "user.carol.b.c"} {
		if _, err := s.CreateMailbox(n, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	_ = s.Mailboxes("", func(m Mailbox) bool { names = append(names, m.Name); return true })
	want := []string{"user.carol", "user.carol.b", "user.carol.b.c", "user.carol-x"}
	if !slices.Equal(names, want) {
		t.Fatalf("order %v want %v", names, want)
	}
	names = nil
	_ = s.Mailboxes("user.carol.b", func(m Mailbox) bool { names = append(names, m.Name); return true })
	if !slices.Equal(names, []string{"user.carol.b", "user.carol.b.c"}) {
		t.Fatalf("under: %v", names)
	}
}

func TestTooBigAndPendingCleanup(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if _, err := s.CreateMailbox("user.dan", "", ""); err != nil {
		t.Fatal(err)
	}
	_, err := s.Deliver(context.Background(), "user.dan", nil, time.Now(), bytes.NewReader(message(3*chunkSize, 2)), chunkSize*2)
	if !errors.Is(err, ErrTooBig) {
		t.Fatalf("too big: %v", err)
	}
	// A staged body never appended (a crash before commit) is removed at
	// the next open.
	if _, err := s.Stage(context.Background(), bytes.NewReader(message(3*chunkSize, 3)), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	it, _ := s.pdb.NewIter(nil)
	for ok := it.First(); ok; ok = it.Next() {
		if k := it.Key(); k[0] == prefixChunk || k[0] == prefixPending {
			t.Errorf("left over key %q", k)
		}
	}
	it.Close()
}

// TestUIDs: the light scan SELECT uses agrees with the full decode.
func TestUIDs(t *testing.T) {
	s := open(t, t.TempDir())
	mb, err := s.CreateMailbox("user.dave", "dave\tlrswipkxtecda\t", "")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		var flags []string
		if i%2 == 0 {
			flags = []string{"$Work", `\Seen`}
		}
		if _, err := s.Deliver(context.Background(), "user.dave", flags, time.Now(), strings.NewReader("S: x\r\n\r\nhi\r\n"), 0); err != nil {
			t.Fatal(err)
		}
	}
	list := func() UIDList {
		v := s.View()
		defer v.Close()
		m, _, err := v.MailboxByID(mb.ID)
		if err != nil {
			t.Fatal(err)
		}
		l, err := v.UIDs(m)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	l := list()
	var uids []uint32
	var firstUnseen uint32
	s.Messages(mb.ID, 1, ^uint32(0), func(m *Message) bool {
		uids = append(uids, m.UID)
		if firstUnseen == 0 && !slices.Contains(m.Flags, `\Seen`) {
			firstUnseen = uint32(len(uids))
		}
		return true
	})
	if !slices.Equal(l.UIDs, uids) || l.FirstUnseen != firstUnseen || firstUnseen != 2 {
		t.Errorf("UIDs %v first unseen %d; Messages %v first unseen %d", l.UIDs, l.FirstUnseen, uids, firstUnseen)
	}
	// A change is seen at once, cache or not.
	if _, err := s.SetFlags(mb.ID, []uint32{2}, FlagsAdd, []string{`\Seen`}, 0); err != nil {
		t.Fatal(err)
	}
	if l := list(); l.FirstUnseen != 4 {
		t.Errorf("after \\Seen on 2: first unseen %d, want 4", l.FirstUnseen)
	}
	if _, err := s.Expunge(mb.ID, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	if l := list(); len(l.UIDs) != 4 || l.UIDs[0] != 2 {
		t.Errorf("after expunging 1: %v", l.UIDs)
	}
}

// TestFolderRemovedRefusesWrites: once the folder is gone no write is
// acknowledged (Pebble's open WAL would take it, into a deleted file),
// reads of what is open go on, and Close does not hang on the flush.
func TestFolderRemovedRefusesWrites(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mail")
	s := open(t, dir)
	if _, err := s.CreateMailbox("user.a", "a\tlrswipkxtecda\t", ""); err != nil {
		t.Fatal(err)
	}
	st, err := s.Stage(context.Background(), bytes.NewReader(message(300<<10, 1)), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append("user.a", []NewMessage{{Body: st}}); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(dir)
	if _, err := s.Stage(context.Background(), bytes.NewReader(message(100, 2)), 0); !errors.Is(err, ErrFailed) {
		t.Errorf("Stage with the folder gone: %v", err)
	}
	if _, err := s.CreateMailbox("user.b", "", ""); !errors.Is(err, ErrFailed) {
		t.Errorf("CreateMailbox with the folder gone: %v", err)
	}
	if m, ok, err := s.Mailbox("user.a"); err != nil || !ok || m.Exists != 1 {
		t.Errorf("reading after the fault: %+v %v %v", m, ok, err)
	}
	if st, cause := s.Health(); st.String() != "failed" || cause == nil {
		t.Errorf("health %v %v", st, cause)
	}
	start := time.Now()
	_ = s.Close()
	if d := time.Since(start); d > 2*closeWait {
		t.Errorf("Close took %v", d)
	}
}

// TestUIDsAdvance: a cached UID list brought forward through the change
// index (flags set and cleared, expunges, deliveries, in random mixes)
// always equals a full read, first unseen included.
func TestUIDsAdvance(t *testing.T) {
	s := open(t, t.TempDir())
	mb, err := s.CreateMailbox("user.erin", "erin\tlrswipkxtecda\t", "")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 11))
	deliver := func(n int) {
		for range n {
			var flags []string
			if rng.IntN(3) > 0 {
				flags = []string{`\Seen`}
			}
			if _, err := s.Deliver(context.Background(), "user.erin", flags, time.Now(), strings.NewReader("S: x\r\n\r\nhi\r\n"), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	deliver(200)
	check := func(step int) {
		t.Helper()
		v := s.View()
		defer v.Close()
		m, _, err := v.MailboxByID(mb.ID)
		if err != nil {
			t.Fatal(err)
		}
		got, err := v.UIDs(m)
		if err != nil {
			t.Fatal(err)
		}
		var want UIDList
		if err := v.Messages(m, 1, ^uint32(0), func(msg *Message) bool {
			want.UIDs = append(want.UIDs, msg.UID)
			if want.FirstUnseen == 0 && !slices.Contains(msg.Flags, `\Seen`) {
				want.FirstUnseen = uint32(len(want.UIDs))
			}
			return true
		}); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.UIDs, want.UIDs) || got.FirstUnseen != want.FirstUnseen {
			t.Fatalf("step %d: UIDs %d first unseen %d, want %d first unseen %d", step, len(got.UIDs), got.FirstUnseen, len(want.UIDs), want.FirstUnseen)
		}
	}
	check(0)
	for step := 1; step <= 60; step++ {
		v := s.View()
		m, _, _ := v.MailboxByID(mb.ID)
		l, _ := v.UIDs(m)
		v.Close()
		pick := func() []uint32 {
			var some []uint32
			for _, u := range l.UIDs {
				if rng.IntN(20) == 0 {
					some = append(some, u)
				}
			}
			if l.FirstUnseen > 0 && rng.IntN(2) == 0 {
				some = append(some, l.UIDs[l.FirstUnseen-1]) // the first unseen itself
			}
			slices.Sort(some)
			return slices.Compact(some)
		}
		switch rng.IntN(4) {
		case 0:
			_, err = s.SetFlags(mb.ID, pick(), FlagsAdd, []string{`\Seen`}, 0)
		case 1:
			_, err = s.SetFlags(mb.ID, pick(), FlagsRemove, []string{`\Seen`}, 0)
		case 2:
			_, err = s.Expunge(mb.ID, pick())
		default:
			deliver(rng.IntN(5))
		}
		if err != nil {
			t.Fatal(err)
		}
		check(step)
	}
}
