package imap

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// FuzzParse feeds arbitrary command text to the parsers behind FETCH,
// SEARCH, SORT, STORE and the string readers; none may panic or loop, and
// skip must always leave the reader usable.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"a FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (DATE FROM)] BODY[1.2.MIME]<0.100>)",
		"a FETCH 2:4 ALL",
		"a FETCH 1 (BINARY.PEEK[1.2]<0.10> BINARY.SIZE[] BINARY[3])",
		"a SEARCH CHARSET UTF-8 OR (FROM \"smith\" SINCE 1-Feb-1994) NOT UID 1:3,7 TEXT {3+}\r\nabc",
		"a STORE 1 (UNCHANGEDSINCE 5) +FLAGS.SILENT (\\Deleted $Junk)",
		"a APPEND INBOX (\\Seen) \"17-Jul-1996 02:44:25 -0700\" {5+}\r\nhello",
		"a LIST (SUBSCRIBED) \"\" (\"INBOX\" \"%\") RETURN (CHILDREN)",
		"a LOGIN {5}\r\nalice \"pa\\\"ss\"",
		"a FETCH 1 (BODY[HEADER.FIELDS.NOT ({4+}\r\nDate)])",
		"a SORT RETURN (MIN MAX PARTIAL 1:10) (REVERSE DATE DISPLAYFROM) UTF-8 YOUNGER 60 $",
		"a SEARCH RETURN (SAVE COUNT) OLDER 3600 1:5",
	} {
		f.Add([]byte(s + "\r\n"))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzOne(data) })
}

// fuzzOne parses data as up to four commands.
func fuzzOne(data []byte) {
	r := &reader{
		br: bufio.NewReader(bytes.NewReader(data)), maxLine: 1 << 10, maxString: 64, maxDiscard: 1 << 10,
		cont: func() error { return nil },
	}
	v := &selected{uids: []uint32{1, 2, 5, 9}}
	for i := 0; i < 4; i++ {
		if r.readLine() != nil {
			return
		}
		r.err = nil
		r.tag()
		r.maybeSP()
		switch r.atom() {
		case "FETCH":
			r.sp()
			r.seqSetText()
			r.sp()
			r.fetchItems()
		case "SEARCH":
			r.sp()
			r.returnOptions()
			var c criteria
			r.searchKeys(&c, v)
		case "SORT":
			r.sp()
			r.returnOptions()
			r.sortCriteria()
			r.sp()
			r.charset()
			r.sp()
			var c criteria
			r.searchKeys(&c, v)
		case "STORE":
			r.sp()
			r.flagList()
		case "LIST":
			r.sp()
			r.listMailbox()
		default:
			r.maybeSP()
			r.astring()
			r.maybeSP()
			r.nstring()
		}
		_ = r.end()
		if r.skip() != nil {
			return
		}
	}
}

// FuzzAddressList checks that any header value gives an address list in
// which groups are balanced and no mailbox could be read as a group
// marker.
func FuzzAddressList(f *testing.F) {
	for _, c := range addressCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		open := false
		for _, a := range parseAddressList(s) {
			switch a.kind {
			case addrGroupStart:
				if open {
					t.Fatalf("%q: nested group", s)
				}
				open = true
			case addrGroupEnd:
				if !open {
					t.Fatalf("%q: group end without start", s)
				}
				open = false
			}
		}
		if open {
			t.Fatalf("%q: group not closed", s)
		}
		_ = appendAddressList(nil, s)
		_ = addressText(parseAddressList(s))
	})
}

// FuzzMIME checks that any message summarizes without panicking and
// that every section the extractor finds lies inside the message, in
// order.
func FuzzMIME(f *testing.F) {
	for _, s := range []string{
		"From: a@b\r\n\r\nbody\r\n",
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\ninner\r\n--b--\r\n",
		"Content-Type: multipart/digest; boundary=\"d\"\r\n\r\n--d\r\n\r\nFrom: m\r\n\r\nx\r\n--d--",
		"Content-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--a--\r\n",
		"no header at all",
		"Content-Type: message/rfc822\r\n\r\nContent-Type: message/rfc822\r\n\r\n",
	} {
		f.Add([]byte(s), []byte{1, 2}, uint8(0))
	}
	f.Fuzz(func(t *testing.T, msg, path []byte, spec uint8) {
		if _, err := Summarize(bytes.NewReader(msg)); err != nil {
			t.Fatal(err)
		}
		sec := &imap.FetchItemBodySection{}
		for _, n := range path[:min(len(path), 8)] {
			sec.Part = append(sec.Part, int(n%4)+1)
		}
		switch spec % 5 {
		case 1:
			sec.Specifier = imap.PartSpecifierHeader
		case 2:
			sec.Specifier = imap.PartSpecifierText
		case 3:
			if len(sec.Part) > 0 {
				sec.Specifier = imap.PartSpecifierMIME
			}
		case 4:
			sec.Specifier = imap.PartSpecifierHeader
			sec.HeaderFields = []string{"Subject"}
		}
		s, err := findSection(bytes.NewReader(msg), sec)
		if err != nil {
			t.Fatal(err)
		}
		if !s.missing && s.data == nil && (s.start < 0 || s.start > s.end || s.end > int64(len(msg))) {
			t.Fatalf("section %v of a %d-byte message: %d-%d", sec.Part, len(msg), s.start, s.end)
		}
	})
}
