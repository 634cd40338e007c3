package imap

import (
	"bytes"
	"io"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/rookery/rookery/store/mailstore"
)

// msgKeys is what SORT and THREAD compare about one message, taken from
// its header once: a message's header never changes, so the keys are
// kept (keyCache) for as long as its UID lives.
type msgKeys struct {
	sent     int64  // sent date (RFC 5256 2.2), Unix seconds
	subject  string // base subject, casemapped
	refwd    bool   // the base subject extraction removed Re:/Fwd:
	from     string // addr-mailbox of the first address, casemapped
	to       string
	cc       string
	dispFrom string // RFC 5957 display value, casemapped
	dispTo   string
	id       string   // Message-ID, "" if none is valid
	refs     []string // References, else the first In-Reply-To id
}

// hit is one message a SEARCH, SORT or THREAD matched.
type hit struct {
	seq     uint32
	uid     uint32
	modseq  uint64
	size    int64
	arrival int64 // internal date, Unix seconds
	keys    *msgKeys
}

var keyFields = map[string]bool{
	"date": true, "subject": true, "from": true, "to": true, "cc": true,
	"message-id": true, "references": true, "in-reply-to": true,
}

// extractKeys reads the header fields SORT and THREAD need from m.
func extractKeys(view *mailstore.View, m *mailstore.Message) (*msgKeys, error) {
	b := view.OpenBody(m)
	defer b.Close()
	return keysFrom(io.LimitReader(b, m.HeaderSize), m)
}

// parseDate reads a Date field. Most are in RFC 5322's usual form, which
// one layout reads; net/mail.ParseDate tries its layouts in turn and
// makes an error for each miss, which SORT's first read of a large
// mailbox felt.
func parseDate(v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if t, err := time.Parse(time.RFC1123Z, v); err == nil {
		return t, nil
	}
	return mail.ParseDate(v)
}

// extractAllKeys is extractKeys for many messages at once, their headers
// read in one pass over the store; keys[i] is msgs[i]'s.
func extractAllKeys(view *mailstore.View, msgs []*mailstore.Message) ([]*msgKeys, error) {
	keys := make([]*msgKeys, len(msgs))
	err := view.Headers(msgs, func(i int, header []byte) error {
		k, err := keysFrom(io.LimitReader(bytes.NewReader(header), int64(len(header))), msgs[i])
		keys[i] = k
		return err
	})
	if err != nil {
		return nil, err
	}
	for i, k := range keys {
		if k == nil { // a header longer than a chunk
			if keys[i], err = extractKeys(view, msgs[i]); err != nil {
				return nil, err
			}
		}
	}
	return keys, nil
}

// keysFrom computes m's keys from its header, read from r.
func keysFrom(r io.Reader, m *mailstore.Message) (*msgKeys, error) {
	fields, err := readFields(r, keyFields)
	if err != nil {
		return nil, err
	}
	get := func(n string) string { v, _ := headerValue(fields, n); return v }
	k := &msgKeys{sent: m.InternalDate.Unix()}
	// RFC 5256 2.2: the Date field if it parses, else the internal date;
	// both compared as instants, whatever their zones.
	if t, err := parseDate(get("Date")); err == nil {
		k.sent = t.Unix()
	}
	subj, refwd := baseSubject(get("Subject"))
	k.subject, k.refwd = casemap(subj), refwd
	from := parseAddressList(get("From"))
	to := parseAddressList(get("To"))
	k.from, k.dispFrom = addrKeys(from)
	k.to, k.dispTo = addrKeys(to)
	k.cc, _ = addrKeys(parseAddressList(get("Cc")))
	if ids := msgIDs(get("Message-ID")); len(ids) > 0 {
		k.id = ids[0]
	}
	k.refs = msgIDs(get("References"))
	if len(k.refs) == 0 {
		if ids := msgIDs(get("In-Reply-To")); len(ids) > 0 {
			k.refs = ids[:1]
		}
	}
	return k, nil
}

// addrKeys returns the sort keys of an address list: the addr-mailbox of
// its first address (RFC 5256), and its display value (RFC 5957: the
// decoded display name, else the addr-spec; a group's name for a group).
func addrKeys(addrs []address) (mailbox, display string) {
	if len(addrs) == 0 {
		return "", ""
	}
	a := addrs[0]
	display = decodeWords(a.name)
	if a.kind == addrGroupStart {
		display = decodeWords(a.mailbox)
	} else if strings.TrimSpace(display) == "" {
		display = a.mailbox
		if a.host != "" {
			display += "@" + a.host
		}
	}
	return casemap(a.mailbox), casemap(strings.TrimSpace(display))
}

// msgIDs returns the "<...>" message ids in a field value, in order.
func msgIDs(v string) []string {
	var ids []string
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			return ids
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			return ids
		}
		if id := v[i+1 : i+j]; id != "" && !strings.ContainsAny(id, " \t\r\n<") {
			ids = append(ids, id)
		}
		v = v[i+j+1:]
	}
}

// maxCachedBytes bounds the memory the keys a server keeps take, across
// mailboxes: some 300 bytes a message, more with long References.
const maxCachedBytes = 128 << 20

// size is about what k takes in memory.
func (k *msgKeys) size() int {
	n := 200 + len(k.subject) + len(k.from) + len(k.to) + len(k.cc) + len(k.dispFrom) + len(k.dispTo) + len(k.id)
	for _, r := range k.refs {
		n += 16 + len(r)
	}
	return n
}

// keyCache keeps the sort keys of recently sorted mailboxes' messages,
// by mailbox id and UID (neither is ever reused), so that a repeated
// SORT or THREAD reads no header.
type keyCache struct {
	mu    sync.Mutex
	boxes map[uint64]*boxKeys
	total int // bytes, by msgKeys.size
	clock uint64
}

type boxKeys struct {
	keys  map[uint32]*msgKeys
	bytes int
	used  uint64
}

func (c *keyCache) get(box uint64, uid uint32) *msgKeys {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b := c.boxes[box]; b != nil {
		return b.keys[uid]
	}
	return nil
}

// all returns the keys of every one of uids, or false if any is missing.
func (c *keyCache) all(box uint64, uids []uint32) ([]*msgKeys, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.boxes[box]
	if b == nil {
		return nil, false
	}
	out := make([]*msgKeys, len(uids))
	for i, u := range uids {
		if out[i] = b.keys[u]; out[i] == nil {
			return nil, false
		}
	}
	c.clock++
	b.used = c.clock
	return out, true
}

// put adds keys for a mailbox whose messages now in view are live; it
// drops the keys of messages no longer there, and whole mailboxes, least
// recently used first, to stay within maxCachedBytes.
func (c *keyCache) put(box uint64, added map[uint32]*msgKeys, live func(uid uint32) bool, nlive int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.boxes == nil {
		c.boxes = map[uint64]*boxKeys{}
	}
	c.clock++
	b := c.boxes[box]
	if b == nil {
		b = &boxKeys{keys: map[uint32]*msgKeys{}}
		c.boxes[box] = b
	}
	b.used = c.clock
	if len(b.keys) > nlive+nlive/2+1024 {
		for uid, k := range b.keys {
			if !live(uid) {
				delete(b.keys, uid)
				n := k.size()
				b.bytes -= n
				c.total -= n
			}
		}
	}
	for uid, k := range added {
		if _, ok := b.keys[uid]; !ok {
			b.keys[uid] = k
			n := k.size()
			b.bytes += n
			c.total += n
		}
	}
	for c.total > maxCachedBytes {
		var oldest uint64
		var victim *boxKeys
		for id, o := range c.boxes {
			if victim == nil || o.used < victim.used {
				oldest, victim = id, o
			}
		}
		c.total -= victim.bytes
		delete(c.boxes, oldest)
	}
}
