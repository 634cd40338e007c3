package imapproxy_test

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rookery/rookery/internal/cyrustest"
)

// TestMbsync: mbsync (isync), a packaged sync tool nobody here wrote,
// mirrors alice's tree (nested folders on rb1, the shared mailbox on rb2)
// into a Maildir through the frontend; then local changes (new messages,
// a new folder, a flag, a deletion) go back the other way, and a third
// run finds nothing left to do.
func TestMbsync(t *testing.T) {
	bin := cyrustest.RequireTool(t, "mbsync", "isync")
	m, rb1, _ := startRookeryMurder(t)
	_, addr := m.frontend(t)

	alice := login(t, addr, "alice", "alicepw")
	alice.ok("CREATE INBOX.work")
	alice.ok("CREATE INBOX.work.deep")
	m.waitEntry(t, "user.alice.work", "rb1")
	m.waitEntry(t, "user.alice.work.deep", "rb1")
	for _, a := range []struct{ box, flags, subject string }{
		{"INBOX", `(\Seen)`, "inbox one"},
		{"INBOX", "()", "inbox two"},
		{"INBOX.work.deep", "()", "deep one"},
		{"INBOX.work.deep", "()", "deep two"},
		{"shared", "()", "shared one"},
	} {
		msg := message(a.subject, "for mbsync")
		alice.ok("APPEND %s %s {%d+}\r\n%s", a.box, a.flags, len(msg), msg)
	}

	dir := t.TempDir()
	mail := filepath.Join(dir, "mail")
	if err := os.Mkdir(mail, 0o700); err != nil {
		t.Fatal(err)
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	// Without UseNamespace no, mbsync keeps to the personal namespace
	// ("INBOX.") and never sees shared.
	rc := filepath.Join(dir, "mbsyncrc")
	conf := fmt.Sprintf(`IMAPAccount alice
Host 127.0.0.1
Port %s
User alice
Pass alicepw
SSLType None
AuthMechs LOGIN

IMAPStore far
Account alice
UseNamespace no

MaildirStore near
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel alice
Far :far:
Near :near:
Patterns *
Create Both
Expunge Both
SyncState *
`, port, mail, mail)
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		// -Dn shows the IMAP exchange, so a failure shows what the
		// frontend answered.
		cmd := exec.CommandContext(ctx, bin, "-Dn", "-c", rc, "-a")
		cmd.Env = append(os.Environ(), "HOME="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("mbsync: %v\n%s", err, out)
		}
		// mbsync carries on past some refusals; none is expected here.
		if bad := regexp.MustCompile(`(?m)^\d+ (BAD|NO) .*`).FindAllString(string(out), -1); bad != nil {
			t.Errorf("mbsync got refusals %q:\n%s", bad, out)
		}
		t.Logf("mbsync:\n%s", out)
	}

	// Far to near.
	run()
	wantLocal := map[string][]string{
		"INBOX":           {"inbox one", "inbox two"},
		"INBOX/work":      nil,
		"INBOX/work/deep": {"deep one", "deep two"},
		"shared":          {"shared one"},
	}
	for folder, want := range wantLocal {
		if got := slices.Sorted(maps.Keys(maildirSubjects(t, filepath.Join(mail, folder)))); !slices.Equal(got, want) {
			t.Errorf("local %s holds %q, want %q", folder, got, want)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Near to far: new messages in an existing folder on each backend, a
	// folder made locally, a flag set and a message deleted locally.
	putMaildir(t, filepath.Join(mail, "INBOX/work"), "1.local-work.test", "local work")
	putMaildir(t, filepath.Join(mail, "shared"), "2.local-shared.test", "local shared")
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(mail, "INBOX/local", sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	putMaildir(t, filepath.Join(mail, "INBOX/local"), "3.local-new.test", "local folder")
	inbox := maildirSubjects(t, filepath.Join(mail, "INBOX"))
	two := inbox["inbox two"]
	base, _, _ := strings.Cut(filepath.Base(two), ":")
	if err := os.Rename(two, filepath.Join(mail, "INBOX/cur", base+":2,F")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(maildirSubjects(t, filepath.Join(mail, "INBOX/work/deep"))["deep one"]); err != nil {
		t.Fatal(err)
	}
	run()

	m.waitEntry(t, "user.alice.local", "rb1")
	wantFar := map[string]map[string]string{
		"INBOX":           {"inbox one": `\Seen`, "inbox two": `\Flagged`},
		"INBOX.work":      {"local work": ""},
		"INBOX.work.deep": {"deep two": ""},
		"INBOX.local":     {"local folder": ""},
		"shared":          {"shared one": "", "local shared": ""},
	}
	checkFar := func() {
		t.Helper()
		for box, want := range wantFar {
			if got := imapSubjects(alice, box); !maps.Equal(got, want) {
				t.Errorf("%s through the frontend holds %q, want %q", box, got, want)
			}
		}
	}
	checkFar()
	// The new message is really on alice's backend, not only visible
	// through the frontend.
	if got := imapSubjects(login(t, rb1.IMAPAddr(), "alice", "alicepw"), "INBOX.work"); !maps.Equal(got, wantFar["INBOX.work"]) {
		t.Errorf("INBOX.work on rb1 holds %q", got)
	}

	// A third run: had mbsync lost track of what it appended (APPENDUID),
	// it would now copy its own messages back and forth.
	run()
	checkFar()
	for folder, want := range map[string]int{"INBOX": 2, "INBOX/work": 1, "INBOX/work/deep": 1, "INBOX/local": 1, "shared": 2} {
		if got := maildirSubjects(t, filepath.Join(mail, folder)); len(got) != want {
			t.Errorf("local %s after the third run: %q, want %d messages", folder, slices.Sorted(maps.Keys(got)), want)
		}
	}
}

// putMaildir delivers a message with the given subject into folder's
// new/, as a local mail program would.
func putMaildir(t *testing.T, folder, name, subject string) {
	t.Helper()
	msg := "From: local@example.com\nSubject: " + subject + "\n\nwritten locally\n"
	if err := os.WriteFile(filepath.Join(folder, "new", name), []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
}

var subjectLine = regexp.MustCompile(`(?m)^Subject: ([^\r\n]*)`)

// maildirSubjects maps the subjects of the messages in a Maildir folder
// to their files.
func maildirSubjects(t *testing.T, folder string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, sub := range []string{"cur", "new"} {
		files, err := filepath.Glob(filepath.Join(folder, sub, "*"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			s := subjectLine.FindSubmatch(b)
			if s == nil {
				t.Fatalf("%s has no subject:\n%s", f, b)
			}
			got[string(s[1])] = f
		}
	}
	return got
}

var fetchFlags = regexp.MustCompile(`FLAGS \(([^)]*)\)`)

// imapSubjects maps the subjects of the messages in box to their flags,
// \Recent left out.
func imapSubjects(c *client, box string) map[string]string {
	c.t.Helper()
	c.ok("EXAMINE %s", box)
	got := map[string]string{}
	for _, r := range c.ok("UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])") {
		f, s := fetchFlags.FindStringSubmatch(r), subjectLine.FindStringSubmatch(r)
		if f == nil || s == nil {
			c.t.Fatalf("FETCH in %s: %q", box, r)
		}
		flags := slices.DeleteFunc(strings.Fields(f[1]), func(s string) bool { return s == `\Recent` })
		got[s[1]] = strings.Join(flags, " ")
	}
	return got
}
