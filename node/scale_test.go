package node

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scaleList is the mailbox list TestFrontendListScale fills a master
// with: ten mailboxes per user (INBOX and f1..f9), some shared with one
// other user, a few shared with anyone, and entries no user may list.
type scaleList struct{ users int }

// pubs is how many mailboxes are shared with anyone.
const pubs = 10

func (l scaleList) user(k int) string { return "u" + strconv.Itoa(k) }

// pubHidden is the one user a negative ACL entry hides shared.pub.j from.
func (l scaleList) pubHidden(j int) int { return j * 13 % l.users }

// reserved reports whether user k's f9 is only reserved, not active.
func (scaleList) reserved(k int) bool { return k%100 == 0 }

// each calls fn for every entry: the MUPDATE command, name and ACL.
func (l scaleList) each(fn func(cmd, name, acl string)) {
	for k := range l.users {
		u := l.user(k)
		own := u + "\tlrswipkxtecdan\t"
		next, second := l.user((k+1)%l.users), l.user((k+2)%l.users)
		fn("ACTIVATE", "user."+u, own)
		for f := 1; f <= 9; f++ {
			name, acl, cmd := "user."+u+".f"+strconv.Itoa(f), own, "ACTIVATE"
			switch f {
			case 1: // the next user may list it
				acl += next + "\tlr\t"
			case 2: // the user after may read but not list it
				acl += second + "\trs\t"
			case 3: // granted, then taken back by a negative entry
				acl += next + "\tlr\t-" + next + "\tl\t"
			case 9:
				if l.reserved(k) {
					cmd = "RESERVE"
				}
			}
			fn(cmd, name, acl)
		}
		if k%50 == 0 { // kept by delayed delete: nobody lists it
			fn("ACTIVATE", "DELETED.user."+u+".old.5F0A1B2C", own)
		}
	}
	for j := range pubs {
		fn("ACTIVATE", "shared.pub"+strconv.Itoa(j), "anyone\tlr\t-"+l.user(l.pubHidden(j))+"\tl\t")
	}
	fn("ACTIVATE", "shared.unlisted", "anyone\trs\t")
}

// visible is what user k may list with LIST "" "*", sorted.
func (l scaleList) visible(k int) []string {
	out := []string{"INBOX"}
	for f := 1; f <= 9; f++ {
		if f != 9 || !l.reserved(k) {
			out = append(out, "INBOX.f"+strconv.Itoa(f))
		}
	}
	if prev := (k + l.users - 1) % l.users; prev != k {
		out = append(out, "user."+l.user(prev)+".f1")
	}
	for j := range pubs {
		if l.pubHidden(j) != k {
			out = append(out, "shared.pub"+strconv.Itoa(j))
		}
	}
	slices.Sort(out)
	return out
}

// listable counts what an admin lists: active entries not deleted.
func (l scaleList) listable() int {
	n := 0
	l.each(func(cmd, name, _ string) {
		if cmd == "ACTIVATE" && !strings.HasPrefix(name, "DELETED.") {
			n++
		}
	})
	return n
}

// TestFrontendListScale fills a master with a large list, lets a
// frontend's replica follow it, and checks that LIST through the frontend
// shows sampled users exactly what they may see and an admin everything.
// ROOKERY_SCALE_ENTRIES sets the size (default 20,000 entries; the README
// gives the 1,000,000-entry run).
func TestFrontendListScale(t *testing.T) {
	entries := 20_000
	if v := os.Getenv("ROOKERY_SCALE_ENTRIES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 {
			t.Fatalf("ROOKERY_SCALE_ENTRIES=%q: want a number of at least 100", v)
		}
		entries = n
	}
	l := scaleList{users: entries / 10}
	r := rand.New(rand.NewPCG(7, uint64(l.users)))
	sample := []int{0, 1, l.users - 1}
	for j := range pubs {
		sample = append(sample, l.pubHidden(j))
	}
	for range 40 {
		sample = append(sample, r.IntN(l.users))
	}
	slices.Sort(sample)
	sample = slices.Compact(sample)
	var users strings.Builder
	users.WriteString("admin:{PLAIN}secret\nmupdate:{PLAIN}mupdatepw\n")
	for _, k := range sample {
		fmt.Fprintf(&users, "%s:{PLAIN}pw%d\n", l.user(k), k)
	}
	usersFile := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(usersFile, []byte(users.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	master := testNode(t, t.TempDir(), func(c *Config) {
		c.UsersFile = usersFile
		c.Admins = []string{"admin", "mupdate"}
		c.LogRetain = 100_000
	})
	start := time.Now()
	fillScaleList(t, master, l)
	t.Logf("master filled with %d entries (%d users) in %v", master.Store().Count(), l.users, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	fe := testNode(t, t.TempDir(), func(c *Config) {
		c.ServerName = "fe.test"
		c.Roles = []Role{RoleFrontend, RoleReplica}
		c.MUPDATEServer = master.MUPDATEAddr()
		c.MUPDATEAuthname, c.MUPDATEPassword = "mupdate", "mupdatepw"
		c.MUPDATERetryDelay = 300 * time.Millisecond
		c.IMAPListen = "127.0.0.1:0"
		c.UsersFile = usersFile
		c.Admins = []string{"admin", "mupdate"}
		c.AllowPlaintext = true
	})
	for fe.Store().Count() != master.Store().Count() {
		if time.Since(start) > 10*time.Minute {
			t.Fatalf("replica holds %d of %d entries after 10 minutes", fe.Store().Count(), master.Store().Count())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("replica in step after %v", time.Since(start).Round(time.Millisecond))

	var took []time.Duration
	for _, k := range sample {
		c := dialText(t, fe.IMAPAddr())
		c.expect("* OK")
		c.cmd(fmt.Sprintf("a LOGIN %s pw%d", l.user(k), k), "a OK")
		t0 := time.Now()
		got := listNames(t, c)
		took = append(took, time.Since(t0))
		if want := l.visible(k); !slices.Equal(got, want) {
			t.Errorf("%s lists %q, want %q", l.user(k), got, want)
		}
		c.Close()
	}
	slices.Sort(took)
	t.Logf("LIST \"\" \"*\" for %d users: p50 %v, max %v", len(took), took[len(took)/2], took[len(took)-1])

	// An admin's LIST of a large list takes longer than dialText allows.
	conn, err := net.Dial("tcp", fe.IMAPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Minute))
	c := &textConn{t: t, Conn: textproto.NewConn(conn)}
	c.expect("* OK")
	c.cmd("a LOGIN admin secret", "a OK")
	if got, want := len(listNames(t, c)), l.listable(); got != want {
		t.Errorf("admin lists %d mailboxes, want %d", got, want)
	}
}

// listNames sends LIST "" "*" and returns the names, sorted.
func listNames(t *testing.T, c *textConn) []string {
	t.Helper()
	if err := c.PrintfLine(`l LIST "" "*"`); err != nil {
		t.Fatal(err)
	}
	var names []string
	for {
		line, err := c.ReadLine()
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "l ") {
			if !strings.HasPrefix(line, "l OK") {
				t.Fatalf("LIST: %s", line)
			}
			break
		}
		_, name, ok := strings.Cut(line, `) "." `)
		if !ok || !strings.HasPrefix(line, "* LIST (") {
			t.Fatalf("LIST line %q", line)
		}
		names = append(names, strings.Trim(name, `"`))
	}
	slices.Sort(names)
	return names
}

// fillScaleList writes l to master over MUPDATE, pipelined in windows.
func fillScaleList(t *testing.T, master *Node, l scaleList) {
	t.Helper()
	c := dialClient(t, master)
	var tags []string
	flush := func() {
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		for _, tag := range tags {
			if _, err := c.Await(tag); err != nil {
				t.Fatal(err)
			}
		}
		tags = tags[:0]
	}
	l.each(func(cmd, name, acl string) {
		var tag string
		var err error
		if cmd == "RESERVE" {
			tag, err = c.Send(cmd, name, "be1!p")
		} else {
			tag, err = c.Send(cmd, name, "be1!p", acl)
		}
		if err != nil {
			t.Fatal(err)
		}
		if tags = append(tags, tag); len(tags) == 2000 {
			flush()
		}
	})
	flush()
}
