package imapproxy

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/store"
)

func TestLiteralAt(t *testing.T) {
	cases := []struct {
		piece string
		size  int64
		sync  bool
		ok    bool
	}{
		{`a APPEND INBOX {12}`, 12, true, true},
		{`a APPEND INBOX {12+}`, 12, false, true},
		{`a APPEND INBOX ~{7-}`, 7, false, true},
		{`* 1 FETCH (BODY[] {0}`, 0, true, true},
		{`a LOGIN "{5}"`, 0, false, false},
		{`a X {}`, 0, false, false},
		{`a X {+}`, 0, false, false},
		{`a X {1a}`, 0, false, false},
		{`a X {-1}`, 0, false, false},
		{`a X {99999999999999999999}`, 0, false, false},
		{`}`, 0, false, false},
	}
	for _, c := range cases {
		lit, ok := literalAt([]byte(c.piece))
		if ok != c.ok || (ok && (lit.size != c.size || lit.sync != c.sync || c.piece[lit.start] != '{')) {
			t.Errorf("literalAt(%q) = %+v %v", c.piece, lit, ok)
		}
	}
}

func TestPieceReader(t *testing.T) {
	long := strings.Repeat("x", 5000)
	in := "a NOOP\r\nb LOGIN " + long + "\r\nc NOOP\n"
	p := pieceReader{r: bufio.NewReaderSize(strings.NewReader(in), 16), max: 100}
	if got, err := p.next(); err != nil || string(got) != "a NOOP" {
		t.Fatalf("first: %q %v", got, err)
	}
	if _, err := p.next(); err != errLineTooLong {
		t.Fatalf("long line: %v", err)
	}
	if got, err := p.next(); err != nil || string(got) != "c NOOP" {
		t.Fatalf("after the long line: %q %v", got, err)
	}
	p = pieceReader{r: bufio.NewReaderSize(strings.NewReader(strings.Repeat("y", 50)+"\r\n"), 16), max: 100}
	if got, err := p.next(); err != nil || len(got) != 50 {
		t.Fatalf("line longer than the buffer: %q %v", got, err)
	}
}

func TestMatch(t *testing.T) {
	cases := []struct {
		pat, name string
		want      bool
	}{
		{"*", "INBOX.a.b", true},
		{"%", "INBOX", true},
		{"%", "INBOX.a", false},
		{"INBOX.%", "INBOX.a", true},
		{"INBOX.%", "INBOX.a.b", false},
		{"INBOX.*", "INBOX.a.b", true},
		{"INBOX.*", "INBOX", false},
		{"user.%.x", "user.bob.x", true},
		{"user.%.x", "user.bob.y.x", false},
		{"*x", "abx", true},
		{"a%c", "abbc", true},
		{"a%c", "ab.c", false},
		{"", "", true},
		{"", "a", false},
		{strings.Repeat("*%", 200) + "z", strings.Repeat("a.", 200) + "b", false},
	}
	for _, c := range cases {
		if got := match(c.pat, c.name, '.'); got != c.want {
			t.Errorf("match(%q, %q) = %v", c.pat, c.name, got)
		}
		// The same with '/' as the separator.
		pat, name := strings.ReplaceAll(c.pat, ".", "/"), strings.ReplaceAll(c.name, ".", "/")
		if got := match(pat, name, '/'); got != c.want {
			t.Errorf("match(%q, %q, '/') = %v", pat, name, got)
		}
	}
}

func TestTailBuf(t *testing.T) {
	var tb tailBuf
	tb.add([]byte("* 1 FETCH (BODY[] "))
	tb.add([]byte(strings.Repeat("z", 100)))
	tb.add([]byte(" {12345}\r\n"))
	lit, ok := literalAt(trimEOL(tb.bytes()))
	if !ok || lit.size != 12345 {
		t.Errorf("tail %q: %+v %v", tb.bytes(), lit, ok)
	}
	tb.reset()
	for _, c := range "abc {7}" {
		tb.add([]byte{byte(c)})
	}
	if lit, ok := literalAt(tb.bytes()); !ok || lit.size != 7 {
		t.Errorf("byte by byte: %q", tb.bytes())
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"INBOX":      "INBOX",
		"INBOX.a b":  `"INBOX.a b"`,
		`x"y\z`:      `"x\"y\\z"`,
		"":           `""`,
		"nil":        `"nil"`,
		"a]b":        "a]b",
		"%":          `"%"`,
		"&AOQ-ndern": "&AOQ-ndern",
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestParseHead(t *testing.T) {
	s := &session{sep: '.'}
	for in, want := range map[string]string{
		"a1 NOOP":             "a1/NOOP",
		"x uid fetch 1 FLAGS": "x/UID FETCH",
		"t.1 select INBOX":    "t.1/SELECT",
	} {
		c, err := s.parseHead([]byte(in))
		if err != nil || c.tag+"/"+c.name != want {
			t.Errorf("parseHead(%q) = %q %q %v", in, c.tag, c.name, err)
		}
	}
	for _, in := range []string{"", "a1", "+ NOOP", "a1  NOOP", "a1 UID"} {
		if _, err := s.parseHead([]byte(in)); err == nil {
			t.Errorf("parseHead(%q) accepted", in)
		}
	}
}

func TestParseMeta(t *testing.T) {
	m, ok := parseMeta(`* 3 FETCH (UID 17 FLAGS (\Seen \Recent $Junk) INTERNALDATE "17-Jul-1996 02:44:25 -0700")`)
	if !ok || m.uid != 17 || m.flags != `\Seen $Junk` || m.date != `"17-Jul-1996 02:44:25 -0700"` {
		t.Errorf("parseMeta: %+v %v", m, ok)
	}
	if _, ok := parseMeta(`* 3 FETCH (FLAGS (\Seen))`); ok {
		t.Error("a FETCH without UID and INTERNALDATE was taken")
	}
	if v, uids, ok := appendUID("[APPENDUID 38505 3955:3957] APPEND completed"); !ok || v != "38505" || uids != "3955:3957" {
		t.Errorf("appendUID: %q %q %v", v, uids, ok)
	}
	// Invalid UTF-8 before the code must not shift where it is read from
	// (found by FuzzBackendResponse: upper-casing grew the line).
	if v, uids, ok := appendUID("\xc0\xc0 [appenduid 7 9]"); !ok || v != "7" || uids != "9" {
		t.Errorf("appendUID after invalid UTF-8: %q %q %v", v, uids, ok)
	}
	if _, _, ok := appendUID("\xc0\xc0\xc0\xc0\xc0\xc0[APPENDUID 1"); ok {
		t.Error("appendUID took a code without its closing bracket")
	}
}

func TestNames(t *testing.T) {
	s := &session{user: "alice.b", sep: '.'}
	for ext, in := range map[string]string{
		"INBOX":       "user.alice^b",
		"inbox.Sent":  "user.alice^b.Sent",
		"INBOXES":     "INBOXES",
		"user.bob.x":  "user.bob.x",
		"shared.news": "shared.news",
	} {
		if got := s.internal(ext); got != in {
			t.Errorf("internal(%q) = %q, want %q", ext, got, in)
		}
	}
	for in, ext := range map[string]string{
		"user.alice^b":      "INBOX",
		"user.alice^b.Sent": "INBOX.Sent",
		"user.alice^bc":     "user.alice^bc",
		"user.bob":          "user.bob",
	} {
		if got := s.external(in); got != ext {
			t.Errorf("external(%q) = %q, want %q", in, got, ext)
		}
	}
}

func TestRights(t *testing.T) {
	s := &session{user: "alice", sep: '.'}
	for acl, want := range map[string]string{
		"bob\tlrs\t":                       "",
		"anyone\tlr\t":                     "lr",
		"alice\tlrswi\t-alice\tw\t":        "lrsi",
		"anyone\tlrs\t-anyone\tr\t":        "ls",
		"anyone\tlrs\talice\tipw\t-bob\tl": "lrsipw",
	} {
		e := &store.Entry{Name: "shared", ACL: acl}
		if got := s.rights(e); got != want {
			t.Errorf("rights(%q) = %q, want %q", acl, got, want)
		}
	}
	if got := s.rights(&store.Entry{Name: "user.alice.x", ACL: "bob\tlrs\t"}); got != implicitOwnerRights {
		t.Errorf("owner's implicit rights: %q", got)
	}
	s.admin = true
	if got := s.rights(&store.Entry{Name: "x"}); !strings.Contains(got, "l") {
		t.Errorf("admin rights: %q", got)
	}
}

func TestList(t *testing.T) {
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b store.Batch
	for _, e := range []store.Entry{
		{Name: "user.alice", ACL: "alice\tlrswipkxtecda\t"},
		{Name: "user.alice.a.b", ACL: "alice\tlrswipkxtecda\t"},
		{Name: "user.alice.z", ACL: "alice\tlrswipkxtecda\t"},
		{Name: "user.bob", ACL: "bob\tlrswipkxtecda\t"},
		{Name: "user.bob.pub", ACL: "bob\tlrswipkxtecda\tanyone\tlr\t"},
		{Name: "shared", ACL: "anyone\tlr\t"},
		{Name: "shared.news", ACL: "anyone\tlr\t"},
		{Name: "DELETED.user.alice.old.5F3A", ACL: "alice\tlrswipkxtecda\t"},
	} {
		e.Kind, e.Location = store.Active, "be!p"
		b.Changes = append(b.Changes, store.Change{Name: e.Name, New: &e})
	}
	b.Changes = append(b.Changes, store.Change{Name: "user.alice.new", New: &store.Entry{Name: "user.alice.new", Kind: store.Reserved, Location: "be!p"}})
	if _, err := db.Commit(&b); err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(Config{DB: db, Users: &auth.Users{}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		ref  string
		pat  []string
		want []string
	}{
		{"", []string{"*"}, []string{
			`(\HasChildren) "." INBOX`, `(\HasNoChildren) "." INBOX.a.b`, `(\HasNoChildren) "." INBOX.z`,
			`(\HasChildren) "." shared`, `(\HasNoChildren) "." shared.news`, `(\HasNoChildren) "." user.bob.pub`}},
		{"", []string{"%"}, []string{`(\HasChildren) "." INBOX`, `(\HasChildren) "." shared`, `(\Noselect \HasChildren) "." user`}},
		{"", []string{"inbox.%"}, []string{`(\Noselect \HasChildren) "." INBOX.a`, `(\HasNoChildren) "." INBOX.z`}},
		{"user.", []string{"%"}, []string{`(\Noselect \HasChildren) "." user.bob`}},
		{"", []string{"nothing*"}, nil},
		// LIST-EXTENDED's several patterns: each name once.
		{"", []string{"INBOX.z", "shared*", "*news"}, []string{
			`(\HasNoChildren) "." INBOX.z`, `(\HasChildren) "." shared`, `(\HasNoChildren) "." shared.news`}},
	}
	for _, c := range cases {
		var out strings.Builder
		s := &session{srv: srv, user: "alice", w: bufio.NewWriter(&out), sep: '.'}
		if err := s.list(c.ref, c.pat); err != nil {
			t.Fatal(err)
		}
		s.w.Flush()
		var got []string
		for l := range strings.Lines(out.String()) {
			got = append(got, strings.TrimPrefix(strings.TrimSpace(l), "* LIST "))
		}
		if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("LIST %q %q:\n%s\nwant:\n%s", c.ref, c.pat, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
		}
	}
}

// fuzzConn feeds a session from a byte string and discards its output.
type fuzzConn struct {
	r        io.Reader
	net.Conn // nil: only the methods below are used
}

func (c fuzzConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (fuzzConn) Write(p []byte) (int, error)      { return len(p), nil }
func (fuzzConn) SetReadDeadline(time.Time) error  { return nil }
func (fuzzConn) SetWriteDeadline(time.Time) error { return nil }
func (fuzzConn) SetDeadline(time.Time) error      { return nil }
func (fuzzConn) Close() error                     { return nil }
func (fuzzConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }

// FuzzCommands runs the not-logged-in command loop, which parses tags,
// atoms, quoted strings and literals, on arbitrary input.
func FuzzCommands(f *testing.F) {
	for _, s := range []string{
		"a LOGIN alice secret\r\n",
		"a LOGIN {5}\r\nalice {6+}\r\nsecret\r\n",
		"a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\nb NOOP\r\n",
		"a AUTHENTICATE PLAIN\r\n*\r\n",
		`a LOGIN "al\"ice" "x\\y"` + "\r\n",
		"a ID (\"name\" {3+}\r\nabc)\r\nb CAPABILITY\r\n",
		"a SELECT {100000+}\r\n",
	} {
		f.Add(s)
	}
	users := &auth.Users{}
	f.Fuzz(func(t *testing.T, in string) {
		srv, err := NewServer(Config{DB: &store.DB{}, Users: users, AllowPlaintext: true,
			Limits: Limits{MaxLine: 200, MaxLiteral: 1000}})
		if err != nil {
			t.Fatal(err)
		}
		s := newSession(srv, fuzzConn{r: strings.NewReader(in)}, nil)
		for range 100 {
			if s.command() != nil {
				break
			}
		}
	})
}
