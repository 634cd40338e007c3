package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"mime"
	"mime/quotedprintable"
	"strings"
	"time"
)

// searchWord is the word SEARCH TEXT looks for. The vocabulary of the
// bodies has no k and no w, so it never turns up by chance, not even
// inside another word: only where the corpus puts it.
const searchWord = "kittiwake"

// corpus is a deterministic mailbox of varied mail, the same for both
// servers: threads with Re:/Fwd: subjects and Message-ID/References
// chains, many senders, dates out of arrival order, and plain,
// quoted-printable and base64 bodies. It keeps only what later messages
// need of earlier ones; each message is made when it is appended.
type corpus struct {
	msgs []meta
	// Hits is how many messages have searchWord in their body.
	Hits int
}

// meta is what a message's neighbours and the checks need of it.
type meta struct {
	parent  int32 // -1 starts a thread
	subject int32 // index of the base subject, shared by a thread
	from    int16
	fwd     bool
	date    int64 // Unix seconds of the Date header
	zone    int8  // index into zones
	hit     bool  // its body has searchWord
	enc     uint8 // encPlain, encQP or encBase64
}

const (
	encPlain = iota
	encQP
	encBase64
)

var (
	firstNames = []string{"Ada", "Björn", "Chiara", "Dmitri", "Eun-ji", "Farid", "Grace", "Hiro", "Inès", "Jonas",
		"Lena", "Mateo", "Nadia", "Olu", "Priya", "Quentin", "Rosa", "Sven", "Tariq", "Ursula", "Vera", "Yusuf", "Zoë"}
	lastNames = []string{"Abara", "Brandt", "Castillo", "Dubois", "Eriksen", "Fujita", "García", "Haddad", "Ivanova",
		"Jensen", "Lindqvist", "Moreau", "Novak", "Okafor", "Petrov", "Rossi", "Sato", "Tanaka", "Vogel", "Zhang"}
	domains = []string{"example.com", "example.org", "mail.example.net", "lists.example.edu", "corp.example"}
	zones   = []string{"+0000", "+0100", "-0500", "+0900", "-0800", "+0530", "+0200"}
	// syllables make the body vocabulary (no k, no w: see searchWord).
	syllables = []string{"ba", "re", "lo", "mi", "tu", "sa", "ne", "do", "pi", "ga", "fe", "ru", "cho", "lin", "dar",
		"vel", "mon", "ter", "qui", "zan", "sol", "ped", "gri", "hal"}
)

// corpusStart is the Date of the first thread; later ones follow about
// five minutes apart, with jitter of days either way.
var corpusStart = time.Date(2024, 1, 2, 9, 0, 0, 0, time.UTC).Unix()

// newCorpus plans n messages; the plan depends on n and nothing else.
func newCorpus(n int) *corpus {
	rng := rand.New(rand.NewPCG(uint64(n), 11))
	c := &corpus{msgs: make([]meta, n)}
	subjects := int32(0)
	for i := range c.msgs {
		m := meta{parent: -1, from: int16(rng.IntN(len(firstNames) * len(lastNames))), zone: int8(rng.IntN(len(zones)))}
		// About 40% answer or forward one of the last 2,000 messages.
		if i > 0 && rng.IntN(10) < 4 {
			p := i - 1 - rng.IntN(min(i, 2000))
			m.parent = int32(p)
			m.subject = c.msgs[p].subject
			m.fwd = rng.IntN(10) == 0
			m.date = c.msgs[p].date + int64(rng.IntN(3*86400))
		} else {
			m.subject = subjects
			subjects++
			m.date = corpusStart + int64(i)*300 + int64(rng.IntN(4*86400)) - 2*86400
		}
		switch rng.IntN(10) {
		case 3:
			m.enc = encQP
		case 7:
			m.enc = encBase64
		}
		m.hit = rng.IntN(50) == 0
		if m.hit {
			c.Hits++
		}
		c.msgs[i] = m
	}
	return c
}

// Len is the number of messages.
func (c *corpus) Len() int { return len(c.msgs) }

func messageID(i int) string {
	return fmt.Sprintf("<%d.%x@corpus.backendbench.test>", i, uint32(i)*2654435761)
}

// subjectText is base subject s: a few words, the same for every n.
func subjectText(s int32) string {
	rng := rand.New(rand.NewPCG(uint64(s), 12))
	words := make([]string, 2+rng.IntN(5))
	for i := range words {
		words[i] = word(rng)
	}
	words[0] = strings.ToUpper(words[0][:1]) + words[0][1:]
	return strings.Join(words, " ") + fmt.Sprintf(" (%d)", s)
}

func word(rng *rand.Rand) string {
	var b strings.Builder
	for range 1 + rng.IntN(3) {
		b.WriteString(syllables[rng.IntN(len(syllables))])
	}
	return b.String()
}

// Date is message i's Date header time, in its zone.
func (c *corpus) Date(i int) time.Time {
	m := c.msgs[i]
	t, _ := time.Parse("-0700", zones[m.zone])
	return time.Unix(m.date, 0).In(t.Location())
}

// Message is message i, CRLF line ends throughout.
func (c *corpus) Message(i int) []byte {
	m := c.msgs[i]
	rng := rand.New(rand.NewPCG(uint64(i), 13))
	var b bytes.Buffer
	first, last := firstNames[int(m.from)%len(firstNames)], lastNames[int(m.from)/len(firstNames)]
	domain := domains[int(m.from)%len(domains)]
	// Names with accents are RFC 2047 encoded words, as mail clients send them.
	fmt.Fprintf(&b, "From: %s <%s.%s@%s>\r\n", mime.QEncoding.Encode("utf-8", first+" "+last),
		strings.ToLower(asciiOnly(first)), strings.ToLower(asciiOnly(last)), domain)
	fmt.Fprintf(&b, "To: Bench <bench@backendbench.test>\r\n")
	subject := subjectText(m.subject)
	switch {
	case m.fwd:
		subject = "Fwd: " + subject
	case m.parent >= 0 && rng.IntN(4) == 0:
		subject = "RE: Re: " + subject
	case m.parent >= 0:
		subject = "Re: " + subject
	}
	fmt.Fprintf(&b, "Subject: %s\r\n", subject)
	fmt.Fprintf(&b, "Date: %s\r\n", c.Date(i).Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	fmt.Fprintf(&b, "Message-ID: %s\r\n", messageID(i))
	if m.parent >= 0 {
		fmt.Fprintf(&b, "In-Reply-To: %s\r\n", messageID(int(m.parent)))
		// References: the chain up from the parent, oldest first, at most 12.
		var refs []string
		for p := m.parent; p >= 0 && len(refs) < 12; p = c.msgs[p].parent {
			refs = append(refs, messageID(int(p)))
		}
		b.WriteString("References:")
		for k := len(refs) - 1; k >= 0; k-- {
			fmt.Fprintf(&b, "\r\n %s", refs[k])
		}
		b.WriteString("\r\n")
	}
	b.WriteString("MIME-Version: 1.0\r\n")

	body := c.body(m, rng)
	switch m.enc {
	case encQP:
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
		var q bytes.Buffer
		w := quotedprintable.NewWriter(&q)
		_, _ = w.Write(body)
		_ = w.Close()
		b.Write(crlf(q.Bytes()))
	case encBase64:
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n")
		enc := base64.StdEncoding.EncodeToString(body)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n")
	default:
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\n")
		b.Write(body)
	}
	return b.Bytes()
}

// body is 5 to 25 lines of words; encoded bodies have accented letters,
// the reason to encode them. A hit has searchWord on one of its lines.
func (c *corpus) body(m meta, rng *rand.Rand) []byte {
	var b bytes.Buffer
	lines := 5 + rng.IntN(21)
	hitLine := rng.IntN(lines)
	for l := range lines {
		for k := range 6 + rng.IntN(8) {
			if k > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(word(rng))
			if m.enc != encPlain && rng.IntN(12) == 0 {
				b.WriteString("é")
			}
		}
		if m.hit && l == hitLine {
			b.WriteString(" " + searchWord)
		}
		b.WriteString(".\r\n")
	}
	return b.Bytes()
}

// crlf turns the bare LFs of the quoted-printable writer into CRLF.
func crlf(p []byte) []byte {
	p = bytes.ReplaceAll(p, []byte("\r\n"), []byte("\n"))
	p = bytes.ReplaceAll(p, []byte("\n"), []byte("\r\n"))
	if !bytes.HasSuffix(p, []byte("\r\n")) {
		p = append(p, '\r', '\n')
	}
	return p
}

// asciiOnly drops what is not ASCII, for the local part of an address.
func asciiOnly(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x80 {
			return r
		}
		return -1
	}, s)
}
