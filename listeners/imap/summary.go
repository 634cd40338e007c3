package imap

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"mime"
	"slices"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// maxHeader bounds the header kept in memory to build an ENVELOPE.
const maxHeader = 1 << 20

// Summarize computes what FETCH ENVELOPE, BODY and BODYSTRUCTURE answer,
// already in wire form, from a message; a store opened with it as
// mailstore.Options.Summarize keeps the result with each body so FETCH
// never parses a message for them. It reads r to its end.
func Summarize(r io.Reader) ([]byte, error) {
	br := bufio.NewReader(r)
	header, err := readHeader(br)
	if err != nil {
		return nil, err
	}
	env := appendEnvelope(nil, header)
	bs := imapserver.ExtractBodyStructure(io.MultiReader(bytes.NewReader(header), br))
	if bs == nil {
		return nil, errors.New("imap: cannot parse message structure")
	}
	body := appendBodyStructure(nil, bs, false)
	ext := appendBodyStructure(nil, bs, true)
	out := []byte{1}
	for _, p := range [][]byte{env, body, ext} {
		out = binary.AppendUvarint(out, uint64(len(p)))
		out = append(out, p...)
	}
	return out, nil
}

// summaryParts splits a Summarize result into ENVELOPE, BODY and
// BODYSTRUCTURE.
func summaryParts(sum []byte) (env, body, ext []byte, ok bool) {
	if len(sum) == 0 || sum[0] != 1 {
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

// readHeader reads the header, empty line included (or everything, for a
// message without body), keeping at most maxHeader bytes.
func readHeader(br *bufio.Reader) ([]byte, error) {
	var h []byte
	for {
		line, err := br.ReadSlice('\n')
		if len(h) < maxHeader {
			h = append(h, line...)
		}
		if err == io.EOF {
			return h, nil
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
		if err == nil && (len(line) == 1 || (len(line) == 2 && line[0] == '\r')) {
			return h, nil
		}
	}
}

// field is one header field, unfolded, with its name as written.
type field struct {
	name, value string
	raw         []byte // the field's bytes, folding and CRLF included
}

// splitHeader splits a raw header into fields.
func splitHeader(h []byte) []field {
	var out []field
	for len(h) > 0 {
		// A field runs to the first line end not followed by white space.
		end := 0
		for {
			i := bytes.IndexByte(h[end:], '\n')
			if i < 0 {
				end = len(h)
				break
			}
			end += i + 1
			if end >= len(h) || (h[end] != ' ' && h[end] != '\t') {
				break
			}
		}
		raw := h[:end]
		h = h[end:]
		line := strings.TrimRight(string(raw), "\r\n")
		if line == "" {
			break
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		value = strings.NewReplacer("\r\n", "", "\n", "").Replace(value)
		out = append(out, field{name: strings.TrimSpace(name), value: strings.TrimSpace(value), raw: raw})
	}
	return out
}

func headerValue(fields []field, name string) (string, bool) {
	for _, f := range fields {
		if strings.EqualFold(f.name, name) {
			return f.value, true
		}
	}
	return "", false
}

// appendEnvelope builds an ENVELOPE from the raw header, keeping encoded
// words as they are (the client decodes them).
func appendEnvelope(dst []byte, header []byte) []byte {
	fields := splitHeader(header)
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
func appendBodyStructure(dst []byte, bs imap.BodyStructure, ext bool) []byte {
	switch p := bs.(type) {
	case *imap.BodyStructureMultiPart:
		dst = append(dst, '(')
		for _, c := range p.Children {
			dst = appendBodyStructure(dst, c, ext)
		}
		dst = append(dst, ' ')
		dst = appendString(dst, strings.ToUpper(p.Subtype))
		if ext {
			var e imap.BodyStructureMultiPartExt
			if p.Extended != nil {
				e = *p.Extended
			}
			dst = append(dst, ' ')
			dst = appendParams(dst, e.Params)
			dst = append(dst, ' ')
			dst = appendDisposition(dst, e.Disposition)
			dst = append(dst, ' ')
			dst = appendLanguage(dst, e.Language)
			dst = append(dst, ' ')
			dst = appendNString(dst, e.Location)
		}
		return append(dst, ')')
	case *imap.BodyStructureSinglePart:
		dst = append(dst, '(')
		dst = appendString(dst, strings.ToUpper(p.Type))
		dst = append(dst, ' ')
		dst = appendString(dst, strings.ToUpper(p.Subtype))
		dst = append(dst, ' ')
		dst = appendParams(dst, p.Params)
		dst = append(dst, ' ')
		dst = appendNString(dst, p.ID)
		dst = append(dst, ' ')
		dst = appendNString(dst, p.Description)
		dst = append(dst, ' ')
		enc := strings.ToUpper(p.Encoding)
		if enc == "" {
			enc = "7BIT"
		}
		dst = appendString(dst, enc)
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, uint64(p.Size), 10)
		switch {
		case p.MessageRFC822 != nil:
			dst = append(dst, ' ')
			dst = appendEnvelopeStruct(dst, p.MessageRFC822.Envelope)
			dst = append(dst, ' ')
			dst = appendBodyStructure(dst, p.MessageRFC822.BodyStructure, ext)
			dst = append(dst, ' ')
			dst = strconv.AppendInt(dst, p.MessageRFC822.NumLines, 10)
		case p.Text != nil:
			dst = append(dst, ' ')
			dst = strconv.AppendInt(dst, p.Text.NumLines, 10)
		}
		if ext {
			var e imap.BodyStructureSinglePartExt
			if p.Extended != nil {
				e = *p.Extended
			}
			dst = append(dst, " NIL "...) // MD5
			dst = appendDisposition(dst, e.Disposition)
			dst = append(dst, ' ')
			dst = appendLanguage(dst, e.Language)
			dst = append(dst, ' ')
			dst = appendNString(dst, e.Location)
		}
		return append(dst, ')')
	}
	return append(dst, "NIL"...)
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

func appendDisposition(dst []byte, d *imap.BodyStructureDisposition) []byte {
	if d == nil || d.Value == "" {
		return append(dst, "NIL"...)
	}
	dst = append(dst, '(')
	dst = appendString(dst, strings.ToUpper(d.Value))
	dst = append(dst, ' ')
	dst = appendParams(dst, d.Params)
	return append(dst, ')')
}

func appendLanguage(dst []byte, langs []string) []byte {
	if len(langs) == 0 {
		return append(dst, "NIL"...)
	}
	dst = append(dst, '(')
	for i, l := range langs {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = appendString(dst, l)
	}
	return append(dst, ')')
}

// appendEnvelopeStruct writes the envelope go-imap parsed for a nested
// message; its texts are decoded, so non-ASCII ones are encoded again.
func appendEnvelopeStruct(dst []byte, e *imap.Envelope) []byte {
	if e == nil {
		return append(dst, "NIL"...)
	}
	enc := func(s string) string {
		if isASCII(s) {
			return s
		}
		return wordEncoder.Encode("utf-8", s)
	}
	dst = append(dst, '(')
	if e.Date.IsZero() {
		dst = append(dst, "NIL"...)
	} else {
		dst = appendString(dst, e.Date.Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	}
	dst = append(dst, ' ')
	dst = appendNString(dst, enc(e.Subject))
	for _, l := range [][]imap.Address{e.From, e.Sender, e.ReplyTo, e.To, e.Cc, e.Bcc} {
		dst = append(dst, ' ')
		if len(l) == 0 {
			dst = append(dst, "NIL"...)
			continue
		}
		dst = append(dst, '(')
		for _, a := range l {
			dst = append(dst, '(')
			dst = appendNString(dst, enc(a.Name))
			dst = append(dst, " NIL "...)
			dst = appendNString(dst, a.Mailbox)
			dst = append(dst, ' ')
			dst = appendNString(dst, a.Host)
			dst = append(dst, ')')
		}
		dst = append(dst, ')')
	}
	dst = append(dst, ' ')
	var irt string
	if len(e.InReplyTo) > 0 {
		irt = "<" + strings.Join(e.InReplyTo, "> <") + ">"
	}
	dst = appendNString(dst, irt)
	dst = append(dst, ' ')
	var mid string
	if e.MessageID != "" {
		mid = "<" + e.MessageID + ">"
	}
	dst = appendNString(dst, mid)
	return append(dst, ')')
}
