package store

import (
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/rookery/rookery/internal/record"
)

// names returns the names fn is called with by a Snapshot reader.
func names(t *testing.T, db *DB, read func(*Snapshot, func(Entry) error) error) []string {
	t.Helper()
	snap := db.Snapshot()
	defer snap.Close()
	var out []string
	if err := read(snap, func(e Entry) error { out = append(out, e.Name); return nil }); err != nil {
		t.Fatalf("read: %v", err)
	}
	return out
}

func granted(t *testing.T, db *DB, id string) []string {
	return names(t, db, func(s *Snapshot, fn func(Entry) error) error { return s.Granted(id, fn) })
}

func subtree(t *testing.T, db *DB, name string) []string {
	return names(t, db, func(s *Snapshot, fn func(Entry) error) error { return s.Subtree(name, fn) })
}

// wantGranted is what Granted must return: a filter of the whole list.
func wantGranted(t *testing.T, db *DB, id string) []string {
	return names(t, db, func(s *Snapshot, fn func(Entry) error) error {
		return s.Scan(func(e Entry) error {
			f := strings.Split(e.ACL, "\t")
			for i := 0; i+1 < len(f); i += 2 {
				if f[i] == id && f[i+1] != "" {
					return fn(e)
				}
			}
			return nil
		})
	})
}

func TestGranted(t *testing.T) {
	db := openTemp(t, Options{})
	commit(t, db,
		put(Entry{Name: "user.alice", Kind: Active, Location: "be1!p", ACL: "alice\tlrswipkxtecda\t"}),
		put(Entry{Name: "user.bob", Kind: Active, Location: "be1!p", ACL: "bob\tlrswipkxtecda\talice\tlr\t"}),
		put(Entry{Name: "user.bob.sub", Kind: Reserved, Location: "be1!p", ACL: "bob\tlrs\t-alice\tl\t"}),
		put(Entry{Name: "shared", Kind: Active, Location: "be2!p", ACL: "anyone\tlr\t"}),
		put(Entry{Name: "user.carol", Kind: Active, Location: "be2!p", ACL: "carol\tlrs\talice\t\t"}),
	)
	for id, want := range map[string][]string{
		"alice":  {"user.alice", "user.bob"}, // not the negative entry, not empty rights
		"bob":    {"user.bob", "user.bob.sub"},
		"anyone": {"shared"},
		"al":     nil, // a prefix of an identifier is not it
		"dave":   nil,
	} {
		if got := granted(t, db, id); !reflect.DeepEqual(got, want) {
			t.Errorf("Granted(%q) = %q, want %q", id, got, want)
		}
	}

	// An ACL change moves the grants; the same name twice in one batch
	// ends as its last change says.
	commit(t, db,
		put(Entry{Name: "user.bob", Kind: Active, Location: "be1!p", ACL: "bob\tlrswipkxtecda\t"}),
		put(Entry{Name: "shared", Kind: Active, Location: "be2!p", ACL: "anyone\tlr\talice\tlrs\t"}),
		put(Entry{Name: "shared", Kind: Active, Location: "be2!p", ACL: "alice\tlrs\t"}),
		del("user.bob.sub"),
	)
	for id, want := range map[string][]string{
		"alice":  {"shared", "user.alice"},
		"bob":    {"user.bob"},
		"anyone": nil,
	} {
		if got := granted(t, db, id); !reflect.DeepEqual(got, want) {
			t.Errorf("after changes: Granted(%q) = %q, want %q", id, got, want)
		}
	}
}

func TestSubtree(t *testing.T) {
	db := openTemp(t, Options{})
	for _, n := range []string{"user.al", "user.alice", "user.alice.a", "user.alice.a.b", "user.alice^x",
		"user.alice-x", "user.alice.z", "user.alicea", "user.alice\x01", "user.b"} {
		commit(t, db, put(Entry{Name: n, Kind: Active, Location: "be!p"}))
	}
	want := []string{"user.alice", "user.alice.a", "user.alice.a.b", "user.alice.z"}
	if got := subtree(t, db, "user.alice"); !reflect.DeepEqual(got, want) {
		t.Errorf("Subtree(user.alice) = %q, want %q", got, want)
	}
	if got := subtree(t, db, "user.nobody"); got != nil {
		t.Errorf("Subtree(user.nobody) = %q", got)
	}
	// A subtree without its root entry (a user whose INBOX is gone).
	commit(t, db, del("user.alice"))
	if got := subtree(t, db, "user.alice"); !reflect.DeepEqual(got, want[1:]) {
		t.Errorf("Subtree without root = %q, want %q", got, want[1:])
	}
}

// wantServers is what ServerCounts must return: a count of the list.
func wantServers(t *testing.T, db *DB) map[string]uint64 {
	out := map[string]uint64{}
	for _, n := range names(t, db, func(s *Snapshot, fn func(Entry) error) error {
		return s.Scan(func(e Entry) error { return fn(Entry{Name: e.Server()}) })
	}) {
		out[n]++
	}
	return out
}

// TestGrantedFollowsRandomChanges checks the indexes against a full scan
// after many random batches, and again after a reopen.
func TestGrantedFollowsRandomChanges(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, dir, Options{})
	ids := []string{"alice", "bob", "anyone", "group:staff", "a"}
	r := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		var b []Change
		for range 1 + r.IntN(4) {
			name := "user.u" + strconv.Itoa(r.IntN(40))
			if r.IntN(5) == 0 {
				b = append(b, del(name))
				continue
			}
			var acl strings.Builder
			for range r.IntN(4) {
				id := ids[r.IntN(len(ids))]
				if r.IntN(4) == 0 {
					id = "-" + id
				}
				acl.WriteString(id + "\t" + "lrs"[:r.IntN(4)] + "\t")
			}
			loc := "be" + strconv.Itoa(r.IntN(3)) + "!p"
			b = append(b, put(Entry{Name: name, Kind: Kind(1 + r.IntN(2)), Location: loc, ACL: acl.String()}))
		}
		commit(t, db, b...)
	}
	check := func(when string) {
		if got, want := db.ServerCounts(), wantServers(t, db); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: ServerCounts() = %v, want %v", when, got, want)
		}
		for _, id := range ids {
			if got, want := granted(t, db, id), wantGranted(t, db, id); !reflect.DeepEqual(got, want) {
				t.Errorf("%s: Granted(%q) = %q, want %q", when, id, got, want)
			}
		}
	}
	check("after changes")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openT(t, dir, Options{})
	defer db.Close()
	check("after reopen")
}

// TestUpgradeAddsGrants opens a store written in format 1, which had no
// grant or server keys: Open indexes it and records format 2.
func TestUpgradeAddsGrants(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, dir, Options{})
	for i := range 50 {
		commit(t, db, put(Entry{Name: "user.u" + strconv.Itoa(i), Kind: Active, Location: "be!p",
			ACL: "u" + strconv.Itoa(i) + "\tlrs\tanyone\tl\t"}))
	}
	// Make it what format 1 wrote: no grant or server keys.
	for _, prefix := range []byte{prefixGrant, prefixServer} {
		lo, hi := familyBounds(prefix)
		if err := db.pdb.DeleteRange(lo, hi, pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.pdb.Set(sysFormat, record.Uvarint(nil, 1), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if got := granted(t, db, "anyone"); got != nil {
		t.Fatalf("grant keys left: %q", got)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openT(t, dir, Options{})
	defer db.Close()
	if got := granted(t, db, "anyone"); len(got) != 50 {
		t.Errorf("after upgrade Granted(anyone) has %d entries, want 50", len(got))
	}
	if got := granted(t, db, "u7"); !reflect.DeepEqual(got, []string{"user.u7"}) {
		t.Errorf("after upgrade Granted(u7) = %q", got)
	}
	if got := db.ServerCounts(); !reflect.DeepEqual(got, map[string]uint64{"be": 50}) {
		t.Errorf("after upgrade ServerCounts() = %v", got)
	}
	if f, _, err := db.getUvarint(sysFormat); err != nil || f != storeFormat {
		t.Errorf("format after upgrade = %d, %v; want %d", f, err, storeFormat)
	}
}
