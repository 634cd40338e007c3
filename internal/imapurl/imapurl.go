// Package imapurl reads the IMAP URLs (RFC 5092) that CATENATE (RFC 4469)
// takes: a message, or a section of it, in a mailbox of the server the
// client talks to. A backend resolves them against its store; a frontend
// routes them by their mailbox. URLAUTH's parts are refused: no
// URLAUTH here.
package imapurl

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// URL is an IMAP URL naming a message or a part of it.
type URL struct {
	Mailbox     string // as the client names it, percent-decoded
	UIDValidity uint32 // 0: not given
	UID         uint32
	Section     string // a BODY[] section spec; "" for the whole message
	// Partial, when Has, is a byte range of the section; Size < 0 runs to
	// its end.
	Partial Partial
}

// Partial is a URL's ";PARTIAL=offset[.length]".
type Partial struct {
	Has          bool
	Offset, Size int64
}

// Parse reads an absolute ("imap://host/...") or absolute-path ("/...")
// IMAP URL. Whatever server it names is taken to be the one the client
// talks to: it reached it under that name.
func Parse(s string) (URL, error) {
	var u URL
	rest := s
	if len(rest) > 7 && strings.EqualFold(rest[:7], "imap://") {
		i := strings.IndexByte(rest[7:], '/')
		if i < 0 {
			return u, errors.New("no mailbox")
		}
		rest = rest[7+i:]
	}
	if !strings.HasPrefix(rest, "/") {
		return u, errors.New("not an IMAP URL")
	}
	segs := strings.Split(rest[1:], "/")
	box, params, _ := strings.Cut(segs[0], ";")
	mbox, err := url.PathUnescape(box)
	if err != nil || mbox == "" {
		return u, errors.New("bad mailbox")
	}
	u.Mailbox = mbox
	if params != "" {
		v, ok := strings.CutPrefix(strings.ToUpper(params), "UIDVALIDITY=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil || n == 0 {
			return u, fmt.Errorf("bad mailbox parameter %q", params)
		}
		u.UIDValidity = uint32(n)
	}
	for _, seg := range segs[1:] {
		name, val, ok := strings.Cut(seg, "=")
		if !ok || !strings.HasPrefix(name, ";") {
			return u, fmt.Errorf("bad segment %q", seg)
		}
		switch strings.ToUpper(name) {
		case ";UID":
			n, err := strconv.ParseUint(val, 10, 32)
			if err != nil || n == 0 {
				return u, errors.New("bad UID")
			}
			u.UID = uint32(n)
		case ";SECTION":
			sec, err := url.PathUnescape(val)
			if err != nil || strings.ContainsAny(sec, "{[]\r\n") {
				return u, errors.New("bad section")
			}
			u.Section = sec
		case ";PARTIAL":
			off, length, hasLen := strings.Cut(val, ".")
			o, err := strconv.ParseUint(off, 10, 32)
			if err != nil {
				return u, errors.New("bad partial")
			}
			u.Partial = Partial{Has: true, Offset: int64(o), Size: -1}
			if hasLen {
				l, err := strconv.ParseUint(length, 10, 32)
				if err != nil || l == 0 {
					return u, errors.New("bad partial")
				}
				u.Partial.Size = int64(l)
			}
		default:
			return u, fmt.Errorf("unsupported %s", name)
		}
	}
	if u.UID == 0 {
		return u, errors.New("no UID")
	}
	return u, nil
}
