package main

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
)

// TestCorpus checks the generated mail: the same for the same size, CRLF
// line ends only, parsable headers, and searchWord in exactly the
// decoded bodies the plan says.
func TestCorpus(t *testing.T) {
	const n = 600
	co, again := newCorpus(n), newCorpus(n)
	hits, replies, encoded := 0, 0, 0
	for i := range n {
		raw := co.Message(i)
		if !bytes.Equal(raw, again.Message(i)) {
			t.Fatalf("message %d differs between two corpora of the same size", i)
		}
		if bytes.Count(raw, []byte("\n")) != bytes.Count(raw, []byte("\r\n")) || bytes.Count(raw, []byte("\r")) != bytes.Count(raw, []byte("\r\n")) {
			t.Fatalf("message %d has a bare CR or LF", i)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if _, err := msg.Header.AddressList("From"); err != nil {
			t.Errorf("message %d: From: %v", i, err)
		}
		if _, err := msg.Header.Date(); err != nil {
			t.Errorf("message %d: Date: %v", i, err)
		}
		if msg.Header.Get("References") != "" {
			replies++
			if !strings.HasSuffix(strings.TrimSpace(msg.Header.Get("References")), msg.Header.Get("In-Reply-To")) {
				t.Errorf("message %d: References does not end with In-Reply-To", i)
			}
		}
		var body io.Reader = msg.Body
		switch msg.Header.Get("Content-Transfer-Encoding") {
		case "quoted-printable":
			body, encoded = quotedprintable.NewReader(body), encoded+1
		case "base64":
			body, encoded = base64.NewDecoder(base64.StdEncoding, body), encoded+1
		}
		text, err := io.ReadAll(body)
		if err != nil {
			t.Fatalf("message %d: body: %v", i, err)
		}
		if has := bytes.Contains(text, []byte(searchWord)); has != co.msgs[i].hit {
			t.Errorf("message %d: search word in the body %v, planned %v", i, has, co.msgs[i].hit)
		}
		if bytes.Contains(raw, []byte(searchWord)) && !co.msgs[i].hit {
			t.Errorf("message %d has the search word but is no hit", i)
		}
		if co.msgs[i].hit {
			hits++
		}
	}
	if hits != co.Hits || hits == 0 || replies < n/4 || encoded < n/10 {
		t.Errorf("%d hits (corpus says %d), %d replies, %d encoded bodies of %d", hits, co.Hits, replies, encoded, n)
	}
}
