package imap

import (
	"encoding/binary"
	"fmt"
	"io"
	"mime"
	"slices"
	"strconv"
	"strings"
)

// summaryVersion starts a Summarize result. Version 1 came from go-imap's
// parser (headers cut at 1 MiB, single-part numbering wrong); its
// summaries no longer match and are recomputed when read.
const summaryVersion = 2

// Summarize computes what FETCH ENVELOPE, BODY and BODYSTRUCTURE answer,
// already in wire form, from a message; a store opened with it as
// mailstore.Options.Summarize keeps the result with each body so FETCH
// never parses a message for them. It reads r to its end, streaming:
// headers of any size are fine.
func Summarize(r io.Reader) ([]byte, error) {
	root, err := parseMIME(r)
	if err != nil {
		return nil, fmt.Errorf("imap: parse message structure: %w", err)
	}
	env := appendEnvelope(nil, root.fields)
	body := appendBodyStructure(nil, root, false)
	ext := appendBodyStructure(nil, root, true)
	out := []byte{summaryVersion}
	for _, p := range [][]byte{env, body, ext} {
		out = binary.AppendUvarint(out, uint64(len(p)))
		out = append(out, p...)
	}
	return out, nil
}

// summaryParts splits a Summarize result into ENVELOPE, BODY and
// BODYSTRUCTURE.
func summaryParts(sum []byte) (env, body, ext []byte, ok bool) {
	if len(sum) == 0 || sum[0] != summaryVersion {
		return nil, nil, nil, false
	}
	sum = sum[1:]
	var parts [3][]byte
	for i := range parts {
		n, k := binary.Uvarint(sum)
		if k <= 0 || n > uint64(len(sum)-k) {
			return nil, nil, nil, false
		}
		parts[i] = sum[k : k+int(n)]
		sum = sum[k+int(n):]
	}
	return parts[0], parts[1], parts[2], len(sum) == 0
}

// field is one header field, unfolded, with its name as written.
type field struct {
	name, value string
}

func headerValue(fields []field, name string) (string, bool) {
	for _, f := range fields {
		if strings.EqualFold(f.name, name) {
			return f.value, true
		}
	}
	return "", false
}

// appendEnvelope builds an ENVELOPE from header fields, keeping encoded
// words as they are (the client decodes them), as Cyrus and Dovecot do.
func appendEnvelope(dst []byte, fields []field) []byte {
	get := func(n string) string { v, _ := headerValue(fields, n); return v }
	dst = append(dst, '(')
	dst = appendNString(dst, get("Date"))
	dst = append(dst, ' ')
	dst = appendNString(dst, get("Subject"))
	from := parseAddressList(get("From"))
	for _, n := range []string{"From", "Sender", "Reply-To", "To", "Cc", "Bcc"} {
		dst = append(dst, ' ')
		addrs := parseAddressList(get(n))
		if (n == "Sender" || n == "Reply-To") && len(addrs) == 0 {
			// RFC 3501 7.4.2: a missing or empty one is From.
			addrs = from
		}
		dst = appendAddresses(dst, addrs)
	}
	dst = append(dst, ' ')
	dst = appendNString(dst, get("In-Reply-To"))
	dst = append(dst, ' ')
	dst = appendNString(dst, get("Message-ID"))
	return append(dst, ')')
}

var wordEncoder = mime.QEncoding

// appendAddressList writes an address list, or NIL when it has no
// address.
func appendAddressList(dst []byte, v string) []byte {
	return appendAddresses(dst, parseAddressList(v))
}

func appendAddresses(dst []byte, addrs []address) []byte {
	if len(addrs) == 0 {
		return append(dst, "NIL"...)
	}
	dst = append(dst, '(')
	for _, a := range addrs {
		switch a.kind {
		case addrGroupStart:
			dst = append(dst, "(NIL NIL "...)
			dst = appendString(dst, a.mailbox)
			dst = append(dst, " NIL)"...)
		case addrGroupEnd:
			dst = append(dst, "(NIL NIL NIL NIL)"...)
		default:
			dst = append(dst, '(')
			dst = appendNString(dst, a.name)
			dst = append(dst, ' ')
			dst = appendNString(dst, a.route)
			dst = append(dst, ' ')
			// Never NIL: (x x NIL NIL) would read as a group's end.
			dst = appendString(dst, a.mailbox)
			dst = append(dst, ' ')
			host := a.host
			if host == "" {
				host = unspecifiedDomain
			}
			dst = appendString(dst, host)
			dst = append(dst, ')')
		}
	}
	return append(dst, ')')
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// appendBodyStructure writes BODY (ext false) or BODYSTRUCTURE.
func appendBodyStructure(dst []byte, p *part, ext bool) []byte {
	if len(p.children) > 0 {
		dst = append(dst, '(')
		for _, c := range p.children {
			dst = appendBodyStructure(dst, c, ext)
		}
		dst = append(dst, ' ')
		dst = appendString(dst, strings.ToUpper(p.subtype))
		if ext {
			dst = append(dst, ' ')
			dst = appendParams(dst, p.params)
			dst = appendPartExt(dst, p)
		}
		return append(dst, ')')
	}
	dst = append(dst, '(')
	dst = appendString(dst, strings.ToUpper(p.mediaType))
	dst = append(dst, ' ')
	dst = appendString(dst, strings.ToUpper(p.subtype))
	dst = append(dst, ' ')
	dst = appendParams(dst, p.params)
	dst = append(dst, ' ')
	dst = appendNString(dst, p.get("Content-Id"))
	dst = append(dst, ' ')
	dst = appendNString(dst, p.get("Content-Description"))
	dst = append(dst, ' ')
	enc := strings.ToUpper(p.get("Content-Transfer-Encoding"))
	if enc == "" {
		enc = "7BIT"
	}
	dst = appendString(dst, enc)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, p.bodyEnd-p.bodyStart, 10)
	switch {
	case p.message != nil:
		dst = append(dst, ' ')
		dst = appendEnvelope(dst, p.message.fields)
		dst = append(dst, ' ')
		dst = appendBodyStructure(dst, p.message, ext)
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, p.lines, 10)
	case p.mediaType == "text":
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, p.lines, 10)
	}
	if ext {
		dst = append(dst, ' ')
		dst = appendNString(dst, p.get("Content-Md5"))
		dst = appendPartExt(dst, p)
	}
	return append(dst, ')')
}

// appendPartExt writes the extension data both kinds of part end with:
// disposition, language, location.
func appendPartExt(dst []byte, p *part) []byte {
	dst = append(dst, ' ')
	if d, params := parseParams(p.get("Content-Disposition")); d != "" {
		dst = append(dst, '(')
		dst = appendString(dst, strings.ToUpper(d))
		dst = append(dst, ' ')
		dst = appendParams(dst, params)
		dst = append(dst, ')')
	} else {
		dst = append(dst, "NIL"...)
	}
	dst = append(dst, ' ')
	var langs []string
	for _, l := range strings.Split(p.get("Content-Language"), ",") {
		if l = strings.TrimSpace(l); l != "" {
			langs = append(langs, l)
		}
	}
	if len(langs) == 0 {
		dst = append(dst, "NIL"...)
	} else {
		dst = append(dst, '(')
		for i, l := range langs {
			if i > 0 {
				dst = append(dst, ' ')
			}
			dst = appendString(dst, l)
		}
		dst = append(dst, ')')
	}
	dst = append(dst, ' ')
	return appendNString(dst, p.get("Content-Location"))
}

func appendParams(dst []byte, params map[string]string) []byte {
	if len(params) == 0 {
		return append(dst, "NIL"...)
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '(')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = appendString(dst, strings.ToUpper(k))
		dst = append(dst, ' ')
		v := params[k]
		if !isASCII(v) {
			v = wordEncoder.Encode("utf-8", v)
		}
		dst = appendString(dst, v)
	}
	return append(dst, ')')
}
