package imap

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// appendRaw appends msg to alice's INBOX over r (logged in).
func appendRaw(r *raw, tag, msg string) {
	r.t.Helper()
	r.send(tag + " APPEND INBOX {" + strconv.Itoa(len(msg)) + "+}\r\n" + msg + "\r\n")
	if l := r.until(tag + " "); !strings.HasPrefix(l[len(l)-1], tag+" OK") {
		r.t.Fatalf("append: %q", l)
	}
}

// fetchText runs a FETCH and returns everything up to its tagged OK as
// one string, literals included.
func fetchText(r *raw, tag, cmd string) string {
	r.t.Helper()
	return strings.Join(r.cmd(tag, cmd, "OK"), "\r\n")
}

const attachment = "--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n" +
	"--b1\r\nContent-Type: application/octet-stream; name=\"evil.exe\"\r\nContent-Disposition: attachment; filename=\"evil.exe\"\r\n\r\nMZattachment\r\n" +
	"--b1--\r\n"

// TestLargeHeaders: a header of any size is parsed to its end, so the
// structure after it is right; a 1 MiB Subject is cut in the ENVELOPE
// but the body's size and lines are right.
func TestLargeHeaders(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice")
	a := e.raw()
	a.cmd("a1", "LOGIN alice alicepw", "OK")

	// 1: a 2 MiB header (one long field, then many short ones) before
	// the multipart Content-Type.
	var h strings.Builder
	h.WriteString("From: a@example.com\r\nX-Long: " + strings.Repeat("x", 1<<20) + "\r\n")
	for h.Len() < 2<<20 {
		h.WriteString("X-Filler: " + strings.Repeat("y", 60) + "\r\n")
	}
	h.WriteString("Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n")
	appendRaw(a, "a2", h.String()+attachment)

	// 2: a 1 MiB Subject.
	body := "line one\r\nline two\r\n"
	appendRaw(a, "a3", "From: a@example.com\r\nSubject: "+strings.Repeat("s", 1<<20)+"\r\n\r\n"+body)
	a.cmd("a4", "SELECT INBOX", "OK")

	got := fetchText(a, "f1", "FETCH 1 BODYSTRUCTURE")
	// "hello" without the line end before the delimiter: 5 bytes, no
	// line end, as go-imap counted before.
	want := `BODYSTRUCTURE (("TEXT" "PLAIN" NIL NIL NIL "7BIT" 5 0 NIL NIL NIL NIL)` +
		`("APPLICATION" "OCTET-STREAM" ("NAME" "evil.exe") NIL NIL "7BIT" 12 NIL ("ATTACHMENT" ("FILENAME" "evil.exe")) NIL NIL) "MIXED" ("BOUNDARY" "b1") NIL NIL NIL)`
	if !strings.Contains(got, want) {
		t.Errorf("BODYSTRUCTURE after a 2 MiB header:\n got %.400s\nwant %s", got, want)
	}
	if got := fetchText(a, "f2", "FETCH 1 BODY.PEEK[2]"); !strings.Contains(got, "BODY[2] {12}\r\nMZattachment)") {
		t.Errorf("BODY[2]: %.300q", got)
	}
	if got := fetchText(a, "f3", "FETCH 1 BODY.PEEK[2.MIME]"); !strings.Contains(got, `filename="evil.exe"`) {
		t.Errorf("BODY[2.MIME]: %.300q", got)
	}
	if got := fetchText(a, "f3b", "FETCH 1 (BODY.PEEK[TEXT] BODY.PEEK[HEADER.FIELDS (Content-Type)])"); !strings.Contains(got, "BODY[TEXT] {"+strconv.Itoa(len(attachment))+"}\r\n"+attachment) ||
		!strings.Contains(got, "BODY[HEADER.FIELDS (CONTENT-TYPE)] {48}\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n") {
		t.Errorf("BODY[TEXT], BODY[HEADER.FIELDS]: %.300q", got)
	}

	for _, c := range []struct{ cmd, want string }{
		{"SEARCH FROM a@example.com", "* SEARCH 1 2"},
		{"SEARCH HEADER X-Filler yyyy", "* SEARCH 1"},
		{"SEARCH HEADER Content-Type b1", "* SEARCH 1"},
		{"SEARCH CHARSET UTF-8 FROM a@example.com NOT SUBJECT s\xc3\xa9", "* SEARCH 1 2"},
	} {
		if got := a.cmd("s", c.cmd, "OK"); got[0] != c.want {
			t.Errorf("%s: %q, want %q", c.cmd, got, c.want)
		}
	}

	got = fetchText(a, "f4", "FETCH 2 (BODY ENVELOPE)")
	if want := `BODY ("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" ` + strconv.Itoa(len(body)) + ` 2)`; !strings.Contains(got, want) {
		t.Errorf("BODY with a 1 MiB Subject:\n got %.300s\nwant %s", got, want)
	}
	if want := "{" + strconv.Itoa(maxFieldValue) + "}\r\n" + strings.Repeat("s", 10); !strings.Contains(got, want) {
		t.Errorf("ENVELOPE subject not cut at %d: %.300q", maxFieldValue, got)
	}
	if got := fetchText(a, "f5", "FETCH 2 BODY.PEEK[TEXT]"); !strings.Contains(got, "{"+strconv.Itoa(len(body))+"}\r\n"+body) {
		t.Errorf("BODY[TEXT]: %.300q", got)
	}

	// 3: the From after 3 MiB of other fields is still searched.
	h.Reset()
	for h.Len() < 3<<20 {
		h.WriteString("Received: " + strings.Repeat("r", 70) + "\r\n")
	}
	appendRaw(a, "a5", h.String()+"From: late@example.com\r\n\r\nx\r\n")
	a.cmd("a6", "NOOP", "OK")
	if got := a.cmd("s", "SEARCH FROM late@example.com", "OK"); got[0] != "* SEARCH 3" {
		t.Errorf("SEARCH FROM after a 3 MiB header: %q", got)
	}
}

// TestSectionNumbering follows RFC 3501 6.4.5 on a single-part message
// and through a message/rfc822 part; a part that does not exist is NIL,
// as Cyrus answers.
func TestSectionNumbering(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice")
	a := e.raw()
	a.cmd("a1", "LOGIN alice alicepw", "OK")
	single := "From: a@example.com\r\nSubject: top\r\n\r\nthe body\r\n"
	appendRaw(a, "a2", single)
	inner := "From: b@example.com\r\nSubject: inner\r\n\r\ninner body\r\n"
	nested := "From: a@example.com\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nfirst\r\n" +
		"--b\r\nContent-Type: message/rfc822\r\n\r\n" + inner + "\r\n--b--\r\n"
	appendRaw(a, "a3", nested)
	a.cmd("a4", "SELECT INBOX", "OK")

	for _, c := range []struct{ seq, item, want string }{
		{"1", "BODY.PEEK[1]", "BODY[1] {10}\r\nthe body\r\n)"},
		{"1", "BODY.PEEK[1.1]", "BODY[1.1] NIL)"},
		{"1", "BODY.PEEK[1.1.1.1]", "BODY[1.1.1.1] NIL)"},
		{"1", "BODY.PEEK[1.1.HEADER]", "BODY[1.1.HEADER] NIL)"},
		{"1", "BODY.PEEK[1.HEADER]", "BODY[1.HEADER] NIL)"},
		{"1", "BODY.PEEK[2]", "BODY[2] NIL)"},
		{"1", "BODY.PEEK[1]<4.3>", "BODY[1]<4> {3}\r\nbod)"},
		{"2", "BODY.PEEK[1]", "BODY[1] {5}\r\nfirst)"},
		{"2", "BODY.PEEK[1.1]", "BODY[1.1] NIL)"},
		{"2", "BODY.PEEK[2.HEADER]", "BODY[2.HEADER] {" + strconv.Itoa(strings.Index(inner, "\r\n\r\n")+4) + "}\r\nFrom: b@example.com\r\nSubject: inner\r\n\r\n)"},
		{"2", "BODY.PEEK[2.TEXT]", "BODY[2.TEXT] {12}\r\ninner body\r\n)"},
		{"2", "BODY.PEEK[2.1]", "BODY[2.1] {12}\r\ninner body\r\n)"},
		{"2", "BODY.PEEK[2.1.1]", "BODY[2.1.1] NIL)"},
		{"2", "BODY.PEEK[2.HEADER.FIELDS (subject)]", "BODY[2.HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: inner\r\n\r\n)"},
		{"2", "BODY.PEEK[2]", "BODY[2] {" + strconv.Itoa(len(inner)) + "}\r\n" + inner + ")"},
		{"2", "BODY.PEEK[3]", "BODY[3] NIL)"},
	} {
		if got := fetchText(a, "f", "FETCH "+c.seq+" "+c.item); !strings.Contains(got, c.want) {
			t.Errorf("FETCH %s %s:\n got %q\nwant %q", c.seq, c.item, got, c.want)
		}
	}
}

// TestMIMEDepthLimit: a message nesting multiparts far past
// maxMIMEDepth gets a structure bounded in depth, and parsing it takes
// memory bounded by the limits, not by the nesting.
func TestMIMEDepthLimit(t *testing.T) {
	const levels = 5000
	var msg bytes.Buffer
	msg.WriteString("From: a@example.com\r\n")
	for i := 0; i < levels; i++ {
		msg.WriteString("Content-Type: multipart/mixed; boundary=\"b" + strconv.Itoa(i) + "\"\r\n\r\n--b" + strconv.Itoa(i) + "\r\n")
	}
	msg.WriteString("Content-Type: text/plain\r\n\r\nleaf\r\n")
	for i := levels - 1; i >= 0; i-- {
		msg.WriteString("--b" + strconv.Itoa(i) + "--\r\n")
	}
	var sum []byte
	alloc := allocatedBy(func() {
		var err error
		if sum, err = Summarize(bytes.NewReader(msg.Bytes())); err != nil {
			t.Fatal(err)
		}
	})
	_, body, _, ok := summaryParts(sum)
	if !ok {
		t.Fatal("bad summary")
	}
	depth, most := 0, 0
	for _, c := range body {
		switch c {
		case '(':
			depth++
			most = max(most, depth)
		case ')':
			depth--
		}
	}
	if most > maxMIMEDepth+3 {
		t.Errorf("BODY nests %d levels", most)
	}
	if !bytes.Contains(body, []byte(`"APPLICATION" "OCTET-STREAM"`)) {
		t.Errorf("the part past the limit is not opaque: %.200s", body)
	}
	t.Logf("%d KiB message, %d levels: %d KiB allocated, BODY %d bytes nesting %d", msg.Len()>>10, levels, alloc>>10, len(body), most)
	if alloc > 8<<20 {
		t.Errorf("%d MiB allocated", alloc>>20)
	}

	// The section extractor agrees with the structure: part 1.1.1... to
	// the limit exists, deeper ones do not.
	sec := &imap.FetchItemBodySection{}
	for i := 0; i < maxMIMEDepth; i++ {
		sec.Part = append(sec.Part, 1)
	}
	s, err := findSection(bytes.NewReader(msg.Bytes()), sec)
	if err != nil || s.missing {
		t.Fatalf("part at the limit: %+v %v", s, err)
	}
	sec.Part = append(sec.Part, 1)
	if s, _ := findSection(bytes.NewReader(msg.Bytes()), sec); !s.missing {
		t.Errorf("part past the limit: %+v", s)
	}
}

// TestHeaderMemory: summarizing a message keeps only the capped header
// fields, so the memory it takes does not grow with the header.
func TestHeaderMemory(t *testing.T) {
	summarize := func(size int) uint64 {
		var msg bytes.Buffer
		msg.WriteString("Subject: " + strings.Repeat("s", 4<<20) + "\r\nTo: " + strings.Repeat("t@x, ", 1<<20) + "\r\n")
		for msg.Len() < size {
			msg.WriteString("Received: " + strings.Repeat("r", 70) + "\r\n")
		}
		msg.WriteString("Content-Type: text/plain\r\n\r\nbody\r\n")
		var sum []byte
		alloc := allocatedBy(func() {
			var err error
			if sum, err = Summarize(bytes.NewReader(msg.Bytes())); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("%d MiB header: %d KiB allocated, summary %d KiB", msg.Len()>>20, alloc>>10, len(sum)>>10)
		if _, body, _, _ := summaryParts(sum); string(body) != `("TEXT" "PLAIN" NIL NIL NIL "7BIT" 6 1)` {
			t.Errorf("BODY %s", body)
		}
		return alloc
	}
	small, large := summarize(8<<20), summarize(32<<20)
	if large > small+1<<20 {
		t.Errorf("a 32 MiB header takes %d KiB, an 8 MiB one %d KiB", large>>10, small>>10)
	}
}

// TestBodyStructure compares BODY with what real Cyrus 3.6 answers for
// the same messages (where ours differs on purpose, the comment says).
func TestBodyStructure(t *testing.T) {
	for _, c := range []struct{ msg, want string }{
		{"From: a@b\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\npre\r\n--x  \r\n\r\none\r\n--x\r\nContent-Type: text/html\r\n\r\n--x--",
			`(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 3 0)("TEXT" "HTML" NIL NIL NIL "7BIT" 0 0) "MIXED")`},
		{"From: a@b\r\nContent-Type: text\r\n\r\nbad type\r\n", `("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 1)`},
		{"From: a@b\r\nContent-Type: message/rfc822\r\n\r\nno header here just text\r\n",
			`("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 26 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) ("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 0 0) 1)`},
		{"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nFrom: m@x\r\nSubject: m1\r\n\r\nx\r\n--d--\r\n",
			`(("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 27 (NIL "m1" ((NIL NIL "m" "x")) ((NIL NIL "m" "x")) ((NIL NIL "m" "x")) NIL NIL NIL NIL NIL) ("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 1 0) 3) "DIGEST")`},
		// Cyrus: a 0-length text; ours keeps the body's real size.
		{"From: a@b\r\nContent-Type: multipart/mixed\r\n\r\nno boundary\r\n", `("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 13 1)`},
		// Cyrus: one empty TEXT/PLAIN part too.
		{"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\nno delimiters here\r\n", `(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 0 0) "MIXED")`},
		// Cyrus puts "after" inside the unclosed inner multipart; RFC
		// 2046 5.1.2: the outer delimiter ends it.
		{"Content-Type: multipart/alternative; boundary=o\r\n\r\n--o\r\nContent-Type: multipart/related; boundary=i\r\n\r\n--i\r\n\r\nin1\r\n--o\r\n\r\nafter\r\n--o--\r\n",
			`((("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 3 0) "RELATED")("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 5 0) "ALTERNATIVE")`},
		{"Subject: header only, no empty line", `("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 0 0)`},
	} {
		sum, err := Summarize(strings.NewReader(c.msg))
		if err != nil {
			t.Fatal(err)
		}
		if _, body, _, _ := summaryParts(sum); string(body) != c.want {
			t.Errorf("%q:\n got %s\nwant %s", c.msg, body, c.want)
		}
	}
}

// countingSeeker counts the bytes read through it.
type countingSeeker struct {
	*bytes.Reader
	n int
}

func (c *countingSeeker) Read(p []byte) (int, error) {
	k, err := c.Reader.Read(p)
	c.n += k
	return k, err
}

// TestSectionReadsLittle: finding part 1 does not read the 8 MiB
// attachment after it.
func TestSectionReadsLittle(t *testing.T) {
	msg := "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nsmall\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\n" +
		strings.Repeat("A", 8<<20) + "\r\n--b--\r\n"
	r := &countingSeeker{Reader: bytes.NewReader([]byte(msg))}
	s, err := findSection(r, &imap.FetchItemBodySection{Part: []int{1}})
	if err != nil || s.missing || msg[s.start:s.end] != "small" {
		t.Fatalf("BODY[1]: %+v %v", s, err)
	}
	if r.n > 256<<10 {
		t.Errorf("read %d KiB of an 8 MiB message for its first part", r.n>>10)
	}
	r = &countingSeeker{Reader: bytes.NewReader([]byte(msg))}
	if s, err := findSection(r, &imap.FetchItemBodySection{Part: []int{2}}); err != nil || s.end-s.start != 8<<20 {
		t.Fatalf("BODY[2]: %+v %v", s, err)
	}
}

// TestMIMEPartsLimit: a multipart with more parts than maxMIMEParts is
// split up to the limit; the rest is not described, and its size is
// still counted in the whole.
func TestMIMEPartsLimit(t *testing.T) {
	var msg bytes.Buffer
	msg.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n")
	for i := 0; i < 2*maxMIMEParts; i++ {
		msg.WriteString("--b\r\n\r\nx\r\n")
	}
	msg.WriteString("--b--\r\n")
	sum, err := Summarize(bytes.NewReader(msg.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	_, body, _, _ := summaryParts(sum)
	if n := bytes.Count(body, []byte(`("TEXT"`)); n != maxMIMEParts-1 {
		t.Errorf("%d parts described", n)
	}
	for _, c := range []struct {
		n       int
		missing bool
	}{{1, false}, {maxMIMEParts - 1, false}, {maxMIMEParts, true}, {2 * maxMIMEParts, true}} {
		s, err := findSection(bytes.NewReader(msg.Bytes()), &imap.FetchItemBodySection{Part: []int{c.n}})
		if err != nil || s.missing != c.missing {
			t.Errorf("part %d: %+v %v", c.n, s, err)
		}
	}
}
