package imap

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/rookery/rookery/internal/cyrustest"
)

// makeUsers creates the INBOXes of the given users as admin.
func (e *env) makeUsers(users ...string) {
	e.t.Helper()
	c := e.client("admin", "adminpw", nil)
	for _, u := range users {
		sep := "."
		if e.cfg.Separator == '/' {
			sep = "/"
		}
		if err := c.Create("user"+sep+u, nil).Wait(); err != nil {
			e.t.Fatalf("create user.%s: %v", u, err)
		}
	}
	_ = c.Logout().Wait()
}

func appendMsg(t *testing.T, c *imapclient.Client, mailbox, msg string, flags ...imap.Flag) *imap.AppendData {
	t.Helper()
	cmd := c.Append(mailbox, int64(len(msg)), &imap.AppendOptions{Flags: flags, Time: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)})
	if _, err := cmd.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := cmd.Wait()
	if err != nil {
		t.Fatalf("append to %s: %v", mailbox, err)
	}
	return data
}

func TestIMAPClientFlow(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice", "bob")
	c := e.client("alice", "alicepw", nil)

	if !c.Caps().Has(imap.CapIdle) || !c.Caps().Has(imap.CapMove) || !c.Caps().Has(imap.CapUIDPlus) || !c.Caps().Has("ACL") {
		t.Fatalf("capabilities %v", c.Caps())
	}
	for _, n := range []string{"INBOX.Work", "INBOX.Work.Old"} {
		if err := c.Create(n, nil).Wait(); err != nil {
			t.Fatalf("create %s: %v", n, err)
		}
	}
	if err := c.Create("INBOX.Sent", &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttrSent}}).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("INBOX.Work", nil).Wait(); err == nil {
		t.Fatal("second create of INBOX.Work succeeded")
	}
	if err := c.Create("shared", nil).Wait(); err == nil {
		t.Fatal("user created a top-level mailbox")
	}
	mboxes, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range mboxes {
		names = append(names, m.Mailbox)
		if m.Mailbox == "INBOX.Sent" && !slices.Contains(m.Attrs, imap.MailboxAttrSent) {
			t.Errorf("INBOX.Sent attrs %v", m.Attrs)
		}
		if m.Delim != '.' {
			t.Errorf("delimiter %q", m.Delim)
		}
	}
	if want := []string{"INBOX", "INBOX.Sent", "INBOX.Work", "INBOX.Work.Old"}; !slices.Equal(names, want) {
		t.Fatalf("LIST * = %v, want %v", names, want)
	}

	// APPEND, with a multipart message for BODYSTRUCTURE.
	multipart := "From: a@example.com\r\nSubject: parts\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=XX\r\n\r\n" +
		"--XX\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nfirst part\r\n" +
		"--XX\r\nContent-Type: text/html\r\n\r\n<p>second</p>\r\n--XX--\r\n"
	a1 := appendMsg(t, c, "INBOX", testMessage("hello one", "the first body"))
	a2 := appendMsg(t, c, "INBOX", multipart, imap.FlagFlagged)
	a3 := appendMsg(t, c, "INBOX", testMessage("third", "needle in here"))
	if a1.UID != 1 || a2.UID != 2 || a3.UID != 3 || a1.UIDValidity == 0 {
		t.Fatalf("APPENDUIDs %+v %+v %+v", a1, a2, a3)
	}

	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 3 || sel.UIDNext != 4 || sel.UIDValidity != a1.UIDValidity {
		t.Fatalf("select %+v", sel)
	}

	// FETCH headers, parts, structure.
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{
		UID: true, Flags: true, Envelope: true, RFC822Size: true, InternalDate: true,
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		BodySection: []*imap.FetchItemBodySection{
			{Specifier: imap.PartSpecifierHeader, Peek: true},
			{Part: []int{2}, Peek: true},
			{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}, Peek: true},
		},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("%d messages fetched", len(msgs))
	}
	m1, m2 := msgs[0], msgs[1]
	if m1.Envelope == nil || m1.Envelope.Subject != "hello one" || len(m1.Envelope.From) != 1 || m1.Envelope.From[0].Host != "example.com" {
		t.Errorf("envelope %+v", m1.Envelope)
	}
	if m1.RFC822Size != int64(len(testMessage("hello one", "the first body"))) {
		t.Errorf("size %d", m1.RFC822Size)
	}
	if !m1.InternalDate.Equal(time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)) {
		t.Errorf("internal date %v", m1.InternalDate)
	}
	mp, ok := m2.BodyStructure.(*imap.BodyStructureMultiPart)
	if !ok || len(mp.Children) != 2 || mp.Subtype != "MIXED" && mp.Subtype != "mixed" {
		t.Fatalf("bodystructure %#v", m2.BodyStructure)
	}
	if p := mp.Children[1].(*imap.BodyStructureSinglePart); !strings.EqualFold(p.Subtype, "html") {
		t.Errorf("part 2 %#v", p)
	}
	hdr := string(m1.FindBodySection(&imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}))
	if !strings.HasPrefix(hdr, "From: Alice") || !strings.HasSuffix(hdr, "\r\n\r\n") {
		t.Errorf("header %q", hdr)
	}
	if got := string(m2.FindBodySection(&imap.FetchItemBodySection{Part: []int{2}, Peek: true})); got != "<p>second</p>" {
		t.Errorf("part 2 body %q", got)
	}
	if got := string(m1.FindBodySection(&imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}, Peek: true})); got != "Subject: hello one\r\n\r\n" {
		t.Errorf("header fields %q", got)
	}
	if !slices.Contains(m2.Flags, imap.FlagFlagged) || slices.Contains(m1.Flags, imap.FlagSeen) {
		t.Errorf("flags %v %v", m1.Flags, m2.Flags)
	}

	// A non-peek fetch sets \Seen; a partial fetch is a byte range.
	msgs, err = c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{
		{Specifier: imap.PartSpecifierText, Partial: &imap.SectionPartial{Offset: 4, Size: 5}},
	}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(msgs[0].FindBodySection(&imap.FetchItemBodySection{Specifier: imap.PartSpecifierText, Partial: &imap.SectionPartial{Offset: 4, Size: 5}})); got != "first" {
		t.Errorf("partial %q", got)
	}
	if !slices.Contains(msgs[0].Flags, imap.FlagSeen) {
		t.Errorf("no \\Seen after fetch: %v", msgs[0].Flags)
	}

	// STORE and SEARCH.
	if _, err := c.Store(imap.SeqSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{"$Work", imap.FlagAnswered}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	search := func(crit *imap.SearchCriteria) []uint32 {
		t.Helper()
		d, err := c.Search(crit, nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		return d.AllSeqNums()
	}
	if got := search(&imap.SearchCriteria{Body: []string{"NEEDLE"}}); !slices.Equal(got, []uint32{3}) {
		t.Errorf("search body: %v", got)
	}
	if got := search(&imap.SearchCriteria{Flag: []imap.Flag{"$Work"}}); !slices.Equal(got, []uint32{3}) {
		t.Errorf("search keyword: %v", got)
	}
	if got := search(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}); !slices.Equal(got, []uint32{2, 3}) {
		t.Errorf("search unseen: %v", got)
	}
	if got := search(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "HELLO"}}}); !slices.Equal(got, []uint32{1}) {
		t.Errorf("search subject: %v", got)
	}
	if got := search(&imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Larger: 200}, {Flag: []imap.Flag{imap.FlagAnswered}}}}}); !slices.Equal(got, []uint32{2, 3}) {
		t.Errorf("search or: %v", got)
	}
	ud, err := c.UIDSearch(&imap.SearchCriteria{Since: time.Date(2024, 5, 6, 0, 0, 0, 0, time.UTC)}, nil).Wait()
	if err != nil || !slices.Equal(ud.AllUIDs(), []imap.UID{1, 2, 3}) {
		t.Errorf("uid search since: %v %v", ud, err)
	}

	// COPY and MOVE.
	cd, err := c.Copy(imap.SeqSetNum(1, 3), "INBOX.Work").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if cd.UIDValidity == 0 || cd.DestUIDs.String() != "1:2" || cd.SourceUIDs.String() != "1,3" {
		t.Errorf("copy data %+v", cd)
	}
	md, err := c.Move(imap.SeqSetNum(2), "INBOX.Work.Old").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if md.DestUIDs.String() != "1" {
		t.Errorf("move data %+v", md)
	}
	if c.Mailbox().NumMessages != 2 {
		t.Errorf("after move: %d messages", c.Mailbox().NumMessages)
	}
	if _, err := c.Copy(imap.SeqSetNum(1), "INBOX.Nope").Wait(); err == nil || !strings.Contains(err.Error(), "TRYCREATE") {
		t.Errorf("copy to missing mailbox: %v", err)
	}

	// EXPUNGE.
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	exp, err := c.Expunge().Collect()
	if err != nil || !slices.Equal(exp, []uint32{1}) {
		t.Fatalf("expunge %v %v", exp, err)
	}
	st, err := c.Status("INBOX.Work", &imap.StatusOptions{NumMessages: true, UIDNext: true, NumUnseen: true}).Wait()
	if err != nil || *st.NumMessages != 2 || st.UIDNext != 3 || *st.NumUnseen != 1 {
		t.Errorf("status %+v %v", st, err)
	}

	// RENAME keeps children with their parent.
	if err := c.Rename("INBOX.Work", "INBOX.Job", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	mboxes, _ = c.List("", "INBOX.Job*", nil).Collect()
	if len(mboxes) != 2 || mboxes[1].Mailbox != "INBOX.Job.Old" {
		t.Errorf("after rename: %+v", mboxes)
	}
	if err := c.Delete("INBOX.Job.Old").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe("INBOX.Job").Wait(); err != nil {
		t.Fatal(err)
	}
	subs, err := c.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil || len(subs) != 1 || subs[0].Mailbox != "INBOX.Job" {
		t.Errorf("subscribed: %+v %v", subs, err)
	}
}

// TestIdleWokenByDeliver: a message delivered through the store (as LMTP
// will) reaches a client idling on the mailbox.
func TestIdleWokenByDeliver(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice")
	exists := make(chan uint32, 4)
	c := e.client("alice", "alicepw", &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		},
	})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	// The continuation has arrived once Idle returns; deliver now.
	uid, err := e.store.Deliver(context.Background(), "user.alice", nil, time.Now(), strings.NewReader(testMessage("pushed", "x")), 0)
	if err != nil || uid != 1 {
		t.Fatalf("deliver: %d %v", uid, err)
	}
	select {
	case n := <-exists:
		if n != 1 {
			t.Fatalf("EXISTS %d", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("IDLE not woken by a delivery")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].Envelope.Subject != "pushed" {
		t.Fatalf("fetch after idle: %v %v", msgs, err)
	}
}

// TestRestartKeepsAcknowledged: everything acknowledged before the server
// and store close is there after they reopen.
func TestRestartKeepsAcknowledged(t *testing.T) {
	dir := t.TempDir()
	e := startEnv(t, dir, nil)
	e.makeUsers("alice")
	c := e.client("alice", "alicepw", nil)
	if err := c.Create("INBOX.Keep", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	var bodies []string
	var validity uint32
	for i := 0; i < 20; i++ {
		body := testMessage("msg "+strings.Repeat("x", i), strings.Repeat("line of text\r\n", i*50))
		bodies = append(bodies, body)
		d := appendMsg(t, c, "INBOX.Keep", body)
		validity = d.UIDValidity
	}
	if _, err := c.Select("INBOX.Keep", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(2, 5), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged, "$Later"}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(7), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Expunge().Collect(); err != nil {
		t.Fatal(err)
	}
	e.close()

	e2 := startEnv(t, dir, nil)
	c2 := e2.client("alice", "alicepw", nil)
	data, err := c2.Select("INBOX.Keep", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if data.NumMessages != 19 || data.UIDValidity != validity || data.UIDNext != 21 {
		t.Fatalf("after restart: %+v", data)
	}
	msgs, err := c2.Fetch(imap.SeqSetNum(1, 2, 5, 6, 7), &imap.FetchOptions{UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	wantUID := []imap.UID{1, 2, 5, 6, 8}
	if len(msgs) != len(wantUID) {
		t.Fatalf("%d messages", len(msgs))
	}
	for i, m := range msgs {
		if m.UID != wantUID[i] {
			t.Errorf("seq %d: uid %d want %d", m.SeqNum, m.UID, wantUID[i])
		}
		if !bytes.Equal(m.FindBodySection(&imap.FetchItemBodySection{Peek: true}), []byte(bodies[m.UID-1])) {
			t.Errorf("uid %d: body differs", m.UID)
		}
		flagged := m.UID >= 2 && m.UID <= 5
		if slices.Contains(m.Flags, imap.FlagFlagged) != flagged || slices.Contains(m.Flags, "$Later") != flagged {
			t.Errorf("uid %d: flags %v", m.UID, m.Flags)
		}
	}
}

// TestPythonImaplib runs the same flows with Python's imaplib, a client
// nobody here wrote, IDLE woken by a delivery included.
func TestPythonImaplib(t *testing.T) {
	py := cyrustest.RequireTool(t, "python3", "python3")
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice")
	host, port, _ := net.SplitHostPort(e.addr)
	cmd := exec.Command(py, "testdata/imaplib_flow.py", host, port)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if sc.Text() == "IDLING" {
			if _, err := e.store.Deliver(context.Background(), "user.alice", nil, time.Now(), strings.NewReader(testMessage("idle", "x")), 0); err != nil {
				t.Error(err)
			}
		}
	}
	err = cmd.Wait()
	if err != nil || len(lines) == 0 || lines[len(lines)-1] != "PASS" {
		t.Fatalf("imaplib flow: %v\nstdout: %q\nstderr: %s", err, lines, stderr.String())
	}
}

// TestLargeMessage: a message far larger than a store chunk goes in and
// comes out byte for byte, whole and in ranges.
func TestLargeMessage(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice")
	c := e.client("alice", "alicepw", nil)
	msg := sizedMessage(24 << 20)
	appendMsg(t, c, "INBOX", string(msg))
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	whole := &imap.FetchItemBodySection{Peek: true}
	mid := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText, Peek: true, Partial: &imap.SectionPartial{Offset: 13 << 20, Size: 300 << 10}}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{RFC822Size: true, BodySection: []*imap.FetchItemBodySection{whole, mid}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if msgs[0].RFC822Size != int64(len(msg)) || !bytes.Equal(msgs[0].FindBodySection(whole), msg) {
		t.Fatalf("whole body differs (size %d)", msgs[0].RFC822Size)
	}
	hs := int64(bytes.Index(msg, []byte("\r\n\r\n")) + 4)
	if !bytes.Equal(msgs[0].FindBodySection(mid), msg[hs+13<<20:hs+13<<20+300<<10]) {
		t.Fatal("partial text differs")
	}
}
