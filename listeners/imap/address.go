package imap

import (
	"strings"
)

// addrKind tells the three kinds of entry an ENVELOPE address list holds
// (RFC 3501 7.4.2).
type addrKind uint8

const (
	addrMailbox    addrKind = iota
	addrGroupStart          // mailbox is the group's name
	addrGroupEnd
)

// address is one entry of an address list. Texts are as written in the
// header (encoded words kept), unquoted and unfolded.
type address struct {
	kind    addrKind
	name    string // display name, or the comment after a bare addr-spec
	route   string // obsolete source route, "@a,@b"
	mailbox string
	host    string // "" when the address has none
}

// unspecifiedDomain stands for a missing host in an ENVELOPE, where NIL
// would mean a group marker; Cyrus writes the same.
const unspecifiedDomain = "unspecified-domain"

// parseAddressList reads an RFC 5322 address list (obsolete forms, routes
// and groups included) leniently: whatever cannot be parsed is skipped or
// kept as a mailbox without host, never an error, as mail clients write
// all sorts. ENVELOPE and SEARCH both use it so they agree on what an
// address is.
func parseAddressList(s string) []address {
	p := addrParser{s: s}
	var out []address
	inGroup := false
	for {
		p.skipCFWS()
		if p.i >= len(p.s) {
			break
		}
		stops := ",;<@:"
		if inGroup {
			stops = ",;<@" // RFC 5322 groups do not nest
		}
		phrase, local, stop := p.phrase(stops)
		if stop == ':' || stop == '<' || stop == '@' {
			p.i++
		}
		switch stop {
		case ':':
			out = append(out, address{kind: addrGroupStart, mailbox: phrase})
			inGroup = true
			continue
		case '<':
			a := p.angleAddr()
			a.name = phrase
			out = append(out, a)
		case '@':
			host, comment := p.domain(true)
			out = append(out, address{name: comment, mailbox: local, host: host})
		default: // ',', ';' or the end
			if local != "" {
				out = append(out, address{mailbox: local})
			}
		}
		// Whatever follows an address up to the next separator is junk.
		for p.i < len(p.s) && p.s[p.i] != ',' && p.s[p.i] != ';' {
			if !p.skipCFWS() {
				p.i++
			}
		}
		if p.i < len(p.s) {
			if p.s[p.i] == ';' && inGroup {
				out = append(out, address{kind: addrGroupEnd})
				inGroup = false
			}
			p.i++
		}
	}
	if inGroup {
		out = append(out, address{kind: addrGroupEnd})
	}
	return out
}

type addrParser struct {
	s string
	i int
	// comment is the text of the last comment skipped.
	comment string
}

// skipCFWS skips white space and comments and reports whether it moved.
func (p *addrParser) skipCFWS() bool {
	start := p.i
	for p.i < len(p.s) {
		switch c := p.s[p.i]; {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			p.i++
		case c == '(':
			p.skipComment()
		default:
			return p.i > start
		}
	}
	return p.i > start
}

// skipComment skips a comment, nested ones included, and keeps its text
// (the outermost comment's, without its parentheses).
func (p *addrParser) skipComment() {
	p.i++ // '('
	var sb strings.Builder
	depth := 1
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch c {
		case '\\':
			if p.i < len(p.s) {
				c = p.s[p.i]
				p.i++
			}
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				p.comment = strings.TrimSpace(sb.String())
				return
			}
		}
		sb.WriteByte(c)
	}
	p.comment = strings.TrimSpace(sb.String())
}

// quoted reads a quoted string's content, without the quotes and
// escapes. An unterminated one runs to the end.
func (p *addrParser) quoted() string {
	p.i++ // '"'
	var sb strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch c {
		case '"':
			return sb.String()
		case '\\':
			if p.i < len(p.s) {
				c = p.s[p.i]
				p.i++
			}
		case '\r', '\n':
			continue
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

// phrase reads words (atoms, quoted strings, dots) up to one of stops or
// the end. It returns them as a display name (words joined by one space)
// and as a local part (joined as written, without the white space and
// comments between them), and the stop byte (0 at the end), which is not
// consumed.
func (p *addrParser) phrase(stops string) (name, local string, stop byte) {
	var nb, lb strings.Builder
	p.comment = ""
	space := false
	for {
		if p.skipCFWS() {
			space = true
		}
		if p.i >= len(p.s) {
			return nb.String(), lb.String(), 0
		}
		c := p.s[p.i]
		if strings.IndexByte(stops, c) >= 0 {
			return nb.String(), lb.String(), c
		}
		var word string
		if c == '"' {
			word = p.quoted()
		} else {
			start := p.i
			for p.i < len(p.s) && !isAddrSpecial(p.s[p.i]) && strings.IndexByte(stops, p.s[p.i]) < 0 {
				p.i++
			}
			if p.i == start {
				// A special that is not a stop here (">", "]", ...):
				// junk, kept as a word so that nothing loops.
				p.i++
			}
			word = p.s[start:p.i]
		}
		if space && nb.Len() > 0 {
			nb.WriteByte(' ')
		}
		space = false
		nb.WriteString(word)
		lb.WriteString(word)
	}
}

// isAddrSpecial reports the bytes that end an atom in a phrase or local
// part.
func isAddrSpecial(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\n', '(', ')', '"', '<', '>', '@', ',', ';', ':':
		return true
	}
	return false
}

// domain reads a domain (dot-atom or domain literal, comments and white
// space dropped) up to a byte that cannot be in one. With trailing, it
// also returns the text of a comment that follows the domain, which
// names a bare addr-spec ("user@host (Real Name)").
func (p *addrParser) domain(trailing bool) (host, comment string) {
	var sb strings.Builder
	gap := false // white space or a comment since the last domain byte
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '(' {
			p.comment = ""
			p.skipCFWS()
			comment = p.comment
			gap = true
			continue
		}
		// A second '@' is garbage kept in the host, as Cyrus does.
		if isAddrSpecial(c) && c != '@' || c == ']' ||
			// "a . b" is one obsolete domain, "a b" a domain and junk.
			gap && sb.Len() > 0 && c != '.' && !strings.HasSuffix(sb.String(), ".") {
			break
		}
		if c == '[' {
			end := strings.IndexByte(p.s[p.i:], ']')
			if end < 0 {
				end = len(p.s) - p.i - 1
			}
			sb.WriteString(p.s[p.i : p.i+end+1])
			p.i += end + 1
		} else {
			sb.WriteByte(c)
			p.i++
		}
		comment, gap = "", false
	}
	if !trailing {
		comment = ""
	}
	return strings.Trim(sb.String(), "."), comment
}

// angleAddr reads what follows '<': an optional route, an addr-spec and
// the closing '>'.
func (p *addrParser) angleAddr() address {
	var a address
	p.skipCFWS()
	if p.i < len(p.s) && p.s[p.i] == '@' {
		// obs-route: "@a,@b:" before the addr-spec.
		var rb strings.Builder
		for p.i < len(p.s) && p.s[p.i] != ':' && p.s[p.i] != '>' {
			c := p.s[p.i]
			switch {
			case c == '(':
				p.skipComment()
				continue
			case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			default:
				rb.WriteByte(c)
			}
			p.i++
		}
		a.route = strings.Trim(rb.String(), ",")
		if p.i < len(p.s) && p.s[p.i] == ':' {
			p.i++
		}
	}
	_, local, stop := p.phrase("@>,;<")
	a.mailbox = local
	if stop == '@' {
		p.i++
		a.host, _ = p.domain(false)
		p.skipCFWS()
		if p.i < len(p.s) && p.s[p.i] == '>' {
			p.i++
		}
	} else if stop == '>' {
		p.i++
	}
	return a
}
