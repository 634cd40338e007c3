package imap

import (
	"io"
	"mime"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/rookery/rookery/store/mailstore"
)

// criteria is a search program: go-imap's keys, with NOT and OR over
// this type (the embedded Not and Or stay empty) so that they can hold
// WITHIN's keys (RFC 5032), which go-imap lacks.
type criteria struct {
	imap.SearchCriteria
	not []criteria
	or  [][2]criteria
	// OLDER and YOUNGER as instants taken when the command is read: the
	// internal date must not be after notAfter nor before notBefore.
	notAfter, notBefore time.Time
	// OBJECTID's EMAILID and THREADID keys (RFC 8474 6).
	emailIDs, threadIDs []string
	// SAVEDATE's SAVEDBEFORE, SAVEDON and SAVEDSINCE (RFC 8514 4.2), as
	// BEFORE and SINCE are for the internal date.
	savedBefore, savedSince time.Time
	// restricted is set by any key but ALL: without it every message
	// matches, and a SORT or THREAD need not read the messages at all.
	restricted bool
}

// searchKeys reads search keys until the end of the line or ')' into c.
func (r *reader) searchKeys(c *criteria, v *selected) {
	for r.err == nil {
		r.searchKey(c, v)
		if r.atEOL() || r.peek() == ')' {
			return
		}
		r.sp()
	}
}

func (r *reader) searchKey(c *criteria, v *selected) {
	defer r.leave()
	if !r.enter() {
		return
	}
	if r.peek() == '(' {
		r.pos++
		r.searchKeys(c, v)
		r.expect(')')
		return
	}
	if ch := r.peek(); ch >= '0' && ch <= '9' || ch == '*' || ch == '$' {
		c.restricted = true
		c.UID = append(c.UID, r.uidSet(v, false))
		return
	}
	key := strings.ToUpper(r.atom())
	if key != "ALL" {
		c.restricted = true
	}
	arg := func() string { r.sp(); return r.searchString() }
	date := func() time.Time { r.sp(); return r.date() }
	flag := func(f string, not bool) {
		if not {
			c.NotFlag = append(c.NotFlag, imap.Flag(f))
		} else {
			c.Flag = append(c.Flag, imap.Flag(f))
		}
	}
	header := func(k string) {
		c.Header = append(c.Header, imap.SearchCriteriaHeaderField{Key: k, Value: arg()})
	}
	switch key {
	case "ALL":
	case "RECENT", "NEW", "OLD":
		// The messages this session gives \Recent (an empty set matches
		// none); NEW is RECENT UNSEEN, OLD is NOT RECENT.
		var recent imap.UIDSet
		for _, u := range v.recent {
			recent.AddNum(imap.UID(u))
		}
		switch key {
		case "OLD":
			c.not = append(c.not, criteria{SearchCriteria: imap.SearchCriteria{UID: []imap.UIDSet{recent}}})
		case "NEW":
			flag(`\Seen`, true)
			fallthrough
		default:
			c.UID = append(c.UID, recent)
		}
	case "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "SEEN":
		flag(`\`+key[:1]+strings.ToLower(key[1:]), false)
	case "UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN":
		flag(`\`+key[2:3]+strings.ToLower(key[3:]), true)
	case "KEYWORD":
		r.sp()
		flag(canonicalFlag(r.flag()), false)
	case "UNKEYWORD":
		r.sp()
		flag(canonicalFlag(r.flag()), true)
	case "BCC", "CC", "FROM", "SUBJECT", "TO":
		header(key[:1] + strings.ToLower(key[1:]))
	case "HEADER":
		r.sp()
		k := r.astring()
		header(k)
	case "BODY":
		c.Body = append(c.Body, arg())
	case "TEXT":
		c.Text = append(c.Text, arg())
	case "BEFORE", "SINCE", "ON":
		narrow(&c.Since, &c.Before, key, date())
	case "SENTBEFORE", "SENTSINCE", "SENTON":
		narrow(&c.SentSince, &c.SentBefore, key[len("SENT"):], date())
	case "SAVEDBEFORE", "SAVEDSINCE", "SAVEDON":
		narrow(&c.savedSince, &c.savedBefore, key[len("SAVED"):], date())
	case "SAVEDATESUPPORTED":
		// Every mailbox here keeps save dates: it matches all.
	case "EMAILID":
		r.sp()
		c.emailIDs = append(c.emailIDs, r.atom())
	case "THREADID":
		r.sp()
		c.threadIDs = append(c.threadIDs, r.atom())
	case "LARGER":
		r.sp()
		c.Larger = max(c.Larger, int64(r.number(false)))
	case "SMALLER":
		r.sp()
		n := int64(r.number(false))
		if c.Smaller == 0 || n < c.Smaller {
			c.Smaller = n
		}
	case "UID":
		r.sp()
		c.UID = append(c.UID, r.uidSet(v, true))
	case "NOT":
		r.sp()
		var n criteria
		r.searchKey(&n, v)
		c.not = append(c.not, n)
	case "OR":
		var a, b criteria
		r.sp()
		r.searchKey(&a, v)
		r.sp()
		r.searchKey(&b, v)
		c.or = append(c.or, [2]criteria{a, b})
	case "MODSEQ":
		r.sp()
		ms := &imap.SearchCriteriaModSeq{}
		if r.peek() == '"' {
			ms.MetadataName = r.quoted()
			r.sp()
			ms.MetadataType = imap.SearchCriteriaMetadataType(strings.ToLower(r.atom()))
			r.sp()
		}
		ms.ModSeq = r.number(false)
		c.ModSeq = ms
	case "OLDER", "YOUNGER":
		// Internal dates have whole seconds: so has the instant they are
		// compared with, and a message n seconds old is both OLDER n and
		// YOUNGER n.
		r.sp()
		ago := time.Duration(min(r.number(true), maxInterval)) * time.Second
		t := time.Now().Truncate(time.Second).Add(-ago)
		if key == "OLDER" {
			c.notAfter = laterOf(c.notAfter, t, false)
		} else {
			c.notBefore = laterOf(c.notBefore, t, true)
		}
	default:
		if r.err == nil {
			r.fail(badf("Invalid search key %s", key))
		}
	}
}

// maxInterval caps a WITHIN interval (seconds) where a time.Duration
// still holds it: some 290 years, longer than any mail has lived.
const maxInterval = 1 << 33

// narrow tightens the [since, before) window by one BEFORE, SINCE or ON
// key: ON d is SINCE d and BEFORE the day after.
func narrow(since, before *time.Time, key string, d time.Time) {
	switch key {
	case "BEFORE":
		*before = laterOf(*before, d, false)
	case "SINCE":
		*since = laterOf(*since, d, true)
	case "ON":
		*since = laterOf(*since, d, true)
		*before = laterOf(*before, d.AddDate(0, 0, 1), false)
	}
}

// laterOf combines two date bounds: the later of two "since" bounds or the
// earlier of two "before" bounds.
func laterOf(have, t time.Time, since bool) time.Time {
	if have.IsZero() || (since && t.After(have)) || (!since && t.Before(have)) {
		return t
	}
	return have
}

// uidSet reads a sequence set and turns it into the UIDs it names now,
// as a UIDSet (sequence numbers are resolved against the view here).
func (r *reader) uidSet(v *selected, uid bool) imap.UIDSet {
	text := r.seqSetText()
	if r.err != nil {
		return nil
	}
	uids, err := v.resolveSet(text, uid, true)
	if err != nil {
		r.fail(err)
		return nil
	}
	var s imap.UIDSet
	for _, u := range uids {
		s.AddNum(imap.UID(u))
	}
	if s == nil {
		s = imap.UIDSet{}
	}
	return s
}

func cmdSearch(sess *session, tag string, uid bool) (string, error) {
	r := sess.r
	r.sp()
	ret := r.returnOptions()
	if strings.EqualFold(string(r.line[r.pos:min(len(r.line), r.pos+7)]), "CHARSET") {
		r.atom()
		r.sp()
		r.charset()
		r.sp()
	}
	var c criteria
	r.searchKeys(&c, sess.sel)
	if err := r.end(); err != nil {
		sess.searchFailed(ret)
		return "", err
	}
	if c.ModSeq != nil {
		sess.enableCondstore()
	}
	if ret == nil && sess.rev2 {
		// RFC 9051 6.4.4: IMAP4rev2 answers SEARCH with ESEARCH.
		ret = &returnOpts{all: true}
	}
	hits, err := sess.match(&c, false, c.ModSeq != nil)
	if err != nil {
		sess.searchFailed(ret)
		return "", err
	}
	if ret != nil {
		if ret.update {
			if err := sess.keepUpdated(tag, uid, &c, hits); err != nil {
				return "", err
			}
		}
		sess.esearch(tag, uid, ret, hits, c.ModSeq != nil)
		return "", nil
	}
	var highest uint64
	w := sess.w
	w.raw("* SEARCH")
	for i := range hits {
		w.raw(" ").num(uint64(hits[i].id(uid)))
		highest = max(highest, hits[i].modseq)
	}
	if c.ModSeq != nil && len(hits) > 0 {
		w.raw(" (MODSEQ ").num(highest).raw(")")
	}
	w.raw("\r\n")
	return "", nil
}

// evaluator matches one message, reading its header and body only when a
// key needs them.
type evaluator struct {
	view   *mailstore.View
	m      *mailstore.Message
	names  map[string]bool // the header fields the keys need
	fields []field
	loaded bool
	root   *part // the message's structure, once BODY or TEXT needed it
}

// headerNames adds the header fields c needs, in lower case, to names:
// only those are read from each message.
func headerNames(c *criteria, names map[string]bool) {
	if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		names["date"] = true
	}
	for _, h := range c.Header {
		names[strings.ToLower(h.Key)] = true
	}
	for i := range c.not {
		headerNames(&c.not[i], names)
	}
	for i := range c.or {
		headerNames(&c.or[i][0], names)
		headerNames(&c.or[i][1], names)
	}
}

func (e *evaluator) header() ([]field, error) {
	if !e.loaded {
		b := e.view.OpenBody(e.m)
		defer b.Close()
		fields, err := readFields(io.LimitReader(b, e.m.HeaderSize), e.names)
		if err != nil {
			return nil, err
		}
		e.fields = fields
		e.loaded = true
	}
	return e.fields, nil
}

var wordDecoder = &mime.WordDecoder{CharsetReader: charsetReader}

func decodeWords(s string) string {
	if d, err := wordDecoder.DecodeHeader(s); err == nil {
		return d
	}
	return s
}

// headerContains matches a header field for SEARCH HEADER and, on
// address fields, FROM, TO, CC and BCC: its decoded value contains s, or,
// for an address field, its addresses as parsed do ("user@host" matches
// "<user (comment)@ host>").
func headerContains(f field, s string) bool {
	if containsFold(decodeWords(f.value), s) {
		return true
	}
	switch strings.ToLower(f.name) {
	case "from", "sender", "reply-to", "to", "cc", "bcc":
		return containsFold(addressText(parseAddressList(f.value)), s)
	}
	return false
}

// addressText writes addresses the way SEARCH compares them: decoded
// display name, then "<route:mailbox@host>", group names as "name:".
func addressText(addrs []address) string {
	var sb strings.Builder
	for i, a := range addrs {
		if i > 0 {
			sb.WriteString(", ")
		}
		switch a.kind {
		case addrGroupStart:
			sb.WriteString(decodeWords(a.mailbox))
			sb.WriteByte(':')
		case addrGroupEnd:
			sb.WriteByte(';')
		default:
			if a.name != "" {
				sb.WriteString(decodeWords(a.name))
				sb.WriteByte(' ')
			}
			sb.WriteByte('<')
			if a.route != "" {
				sb.WriteString(a.route)
				sb.WriteByte(':')
			}
			sb.WriteString(a.mailbox)
			if a.host != "" {
				sb.WriteByte('@')
				sb.WriteString(a.host)
			}
			sb.WriteByte('>')
		}
	}
	return sb.String()
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

func (e *evaluator) match(c *criteria, seq uint32) (bool, error) {
	if len(c.threadIDs) > 0 {
		return false, nil // no message is in a thread here
	}
	for _, id := range c.emailIDs {
		if id != emailID(e.m) {
			return false, nil
		}
	}
	m := e.m
	for _, s := range c.SeqNum {
		if !s.Contains(seq) {
			return false, nil
		}
	}
	for _, s := range c.UID {
		if !s.Contains(imap.UID(m.UID)) {
			return false, nil
		}
	}
	for _, f := range c.Flag {
		if !slices.Contains(m.Flags, string(f)) {
			return false, nil
		}
	}
	for _, f := range c.NotFlag {
		if slices.Contains(m.Flags, string(f)) {
			return false, nil
		}
	}
	if c.Larger > 0 && m.Size <= c.Larger {
		return false, nil
	}
	if c.Smaller > 0 && m.Size >= c.Smaller {
		return false, nil
	}
	if c.ModSeq != nil && m.ModSeq < c.ModSeq.ModSeq {
		return false, nil
	}
	day := func(t time.Time) time.Time {
		y, mo, d := t.Date()
		return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
	}
	if !c.savedSince.IsZero() && day(saveDate(m)).Before(day(c.savedSince)) {
		return false, nil
	}
	if !c.savedBefore.IsZero() && !day(saveDate(m)).Before(day(c.savedBefore)) {
		return false, nil
	}
	if !c.Since.IsZero() && day(m.InternalDate).Before(day(c.Since)) {
		return false, nil
	}
	if !c.Before.IsZero() && !day(m.InternalDate).Before(day(c.Before)) {
		return false, nil
	}
	if (!c.notAfter.IsZero() && m.InternalDate.After(c.notAfter)) || m.InternalDate.Before(c.notBefore) {
		return false, nil
	}
	if !c.SentSince.IsZero() || !c.SentBefore.IsZero() || len(c.Header) > 0 {
		fields, err := e.header()
		if err != nil {
			return false, err
		}
		if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
			v, _ := headerValue(fields, "Date")
			sent, err := parseDate(v)
			if err != nil {
				return false, nil
			}
			if !c.SentSince.IsZero() && day(sent).Before(day(c.SentSince)) {
				return false, nil
			}
			if !c.SentBefore.IsZero() && !day(sent).Before(day(c.SentBefore)) {
				return false, nil
			}
		}
		for _, h := range c.Header {
			found := false
			for _, f := range fields {
				if strings.EqualFold(f.name, h.Key) && headerContains(f, h.Value) {
					found = true
					break
				}
			}
			if !found {
				return false, nil
			}
		}
	}
	for _, s := range c.Body {
		ok, err := e.textContains(s, false)
		if err != nil || !ok {
			return false, err
		}
	}
	for _, s := range c.Text {
		ok, err := e.textContains(s, true)
		if err != nil || !ok {
			return false, err
		}
	}
	for i := range c.not {
		ok, err := e.match(&c.not[i], seq)
		if err != nil || ok {
			return false, err
		}
	}
	for i := range c.or {
		a, err := e.match(&c.or[i][0], seq)
		if err != nil {
			return false, err
		}
		if !a {
			b, err := e.match(&c.or[i][1], seq)
			if err != nil || !b {
				return false, err
			}
		}
	}
	return true, nil
}
