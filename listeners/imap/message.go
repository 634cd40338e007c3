package imap

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/rookery/rookery/store/mailstore"
)

func cmdStore(sess *session, _ string, uid bool) (string, error) {
	r := sess.r
	r.sp()
	set := r.seqSetText()
	r.sp()
	var unchangedSince uint64
	if r.peek() == '(' {
		r.list(func() {
			if m := strings.ToUpper(r.atom()); m == "UNCHANGEDSINCE" {
				r.sp()
				unchangedSince = r.number(false)
			} else if r.err == nil {
				r.fail(badf("Invalid store modifier %s", m))
			}
		})
		r.sp()
	}
	item := strings.ToUpper(r.atom())
	r.sp()
	var flags []string
	if r.peek() == '(' {
		flags = r.flagList()
	} else {
		flags = append(flags, r.flag())
		for r.maybeSP() {
			flags = append(flags, r.flag())
		}
	}
	if err := r.end(); err != nil {
		return "", err
	}
	silent := strings.HasSuffix(item, ".SILENT")
	op := mailstore.FlagsReplace
	switch strings.TrimSuffix(item, ".SILENT") {
	case "FLAGS":
	case "+FLAGS":
		op = mailstore.FlagsAdd
	case "-FLAGS":
		op = mailstore.FlagsRemove
	default:
		return "", badf("Invalid store item %s", item)
	}
	flags, err := storableFlags(flags)
	if err != nil {
		return "", err
	}
	v := sess.sel
	if v.readOnly {
		return "", no("Mailbox is read-only")
	}
	// Each flag named needs its right.
	needRights := rights(0)
	for _, f := range flags {
		switch f {
		case `\Seen`:
			needRights |= rSeen
		case `\Deleted`:
			needRights |= rDeleteMsg
		default:
			needRights |= rWrite
		}
	}
	if err := need(v.rights, needRights); err != nil {
		return "", err
	}
	uids, err := v.resolve(set, uid)
	if err != nil || len(uids) == 0 {
		return "", err
	}
	if unchangedSince > 0 {
		sess.enableCondstore()
	}
	before := v.modseq
	res, err := sess.srv.cfg.Store.SetFlags(v.id, uids, op, flags, unchangedSince)
	if err != nil {
		return "", err
	}
	// Our own change needs no second announcement from update, unless
	// someone else changed the mailbox in between.
	if res.Changed && res.ModSeq == before+1 {
		v.modseq = res.ModSeq
	}
	// FLAGS must come before a FETCH that shows a new keyword, this
	// command's or another session's.
	m, ok, err := sess.srv.cfg.Store.MailboxByID(v.id)
	if err != nil {
		return "", err
	}
	if ok {
		sess.announceKeywords(m.Keywords)
	}
	w := sess.w
	for _, m := range res.Messages {
		if silent && !sess.condstore {
			continue
		}
		seq := v.seq(m.UID)
		if seq == 0 {
			continue
		}
		w.raw("* ").num(uint64(seq)).raw(" FETCH (")
		if uid || sess.qresync { // RFC 7162 3.2.4
			w.raw("UID ").num(uint64(m.UID)).raw(" ")
		}
		w.raw("FLAGS ")
		sess.writeMessageFlags(m.UID, m.Flags)
		if sess.condstore {
			w.raw(" MODSEQ (").num(m.ModSeq).raw(")")
		}
		w.raw(")\r\n")
	}
	if len(res.Failed) > 0 {
		if uid {
			return "MODIFIED " + uidSetString(res.Failed), nil
		}
		var seqs []uint32
		for _, u := range res.Failed {
			seqs = append(seqs, v.seq(u))
		}
		return "MODIFIED " + uidSetString(seqs), nil
	}
	return "", nil
}

func cmdCopy(sess *session, _ string, uid bool) (string, error) {
	r := sess.r
	r.sp()
	set := r.seqSetText()
	r.sp()
	_, dest := sess.mailboxArg()
	if err := r.end(); err != nil {
		return "", err
	}
	if err := checkName(dest); err != nil {
		return "", err
	}
	move := sess.cmd == "MOVE"
	v := sess.sel
	uids, err := v.resolve(set, uid)
	if err != nil {
		return "", err
	}
	_, drt, err := sess.lookup(dest)
	if err != nil {
		return "", err
	}
	if err := need(drt, rInsert); err != nil {
		return "", err
	}
	if move {
		if v.readOnly {
			return "", no("Mailbox is read-only")
		}
		if err := need(v.rights, rDeleteMsg|rExpunge); err != nil {
			return "", err
		}
	}
	if len(uids) == 0 {
		return "", nil
	}
	st := sess.srv.cfg.Store
	var res mailstore.CopyResult
	if move {
		res, err = st.Move(v.id, uids, dest)
	} else {
		res, err = st.Copy(v.id, uids, dest)
	}
	if err != nil {
		return "", storeError(err)
	}
	if len(res.SourceUIDs) == 0 {
		return "", nil
	}
	code := "COPYUID " + itoa(res.UIDValidity) + " " + uidSetString(res.SourceUIDs) + " " + uidSetString(res.DestUIDs)
	if !move {
		return code, nil
	}
	sess.w.raw("* OK [").raw(code).raw("] Moved\r\n")
	sess.announceExpunged(res.SourceUIDs)
	return "", nil
}

func itoa(n uint32) string {
	var b [10]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// cmdAppend handles APPEND and Cyrus's LOCALAPPEND ("LOCALAPPEND mailbox
// partition ..." as a frontend sends it for a user, the partition
// ignored), with MULTIAPPEND: every message is staged as it arrives and all
// are added in one atomic write, or none.
func cmdAppend(sess *session, _ string, _ bool) (string, error) {
	r := sess.r
	local := sess.cmd == "LOCALAPPEND"
	if local && !sess.id.Admin && sess.id.Proxy == "" {
		return "", bad("Unrecognized command")
	}
	r.sp()
	_, name := sess.mailboxArg()
	if local {
		r.sp()
		r.astring()
	}
	if r.err != nil {
		return "", r.err
	}
	// Whatever refuses the mailbox is said before any message is sent
	// (for a synchronising literal) or after it was skipped.
	var refusal error
	var quota mailstore.Quota
	var hasQuota bool
	m, rt, err := sess.lookup(name)
	if nerr := checkName(name); nerr != nil {
		err = nerr
	}
	switch {
	case err != nil:
		refusal = err
	case rt&rInsert == 0:
		refusal = no("Permission denied")
	default:
		quota, hasQuota, err = sess.srv.cfg.Store.QuotaRoot(m.Name)
		if err != nil {
			return "", err
		}
	}
	var staged []mailstore.NewMessage
	discard := func() {
		for _, nm := range staged {
			if err := nm.Body.Discard(); err != nil {
				sess.log.Warn("imap: discard staged body", "err", err)
			}
		}
	}
	var total int64
	maxSize := sess.srv.cfg.MaxMessageSize
	for r.err == nil {
		r.sp()
		var flags []string
		if r.peek() == '(' {
			flags = r.flagList()
			r.sp()
		}
		var date time.Time
		if r.peek() == '"' {
			date = r.dateTime()
			r.sp()
		}
		// A literal8 (RFC 3516 4.4) may carry NUL: the message is kept
		// as sent, and BODY fetches stand in for NUL (nulReplacer).
		r.maybe('~')
		catenate := hasPrefixFold(string(r.line[r.pos:]), "CATENATE ")
		if r.err != nil {
			break
		}
		if refusal == nil {
			if flags, err = storableFlags(flags); err != nil {
				refusal = err
			}
		}
		if refusal != nil {
			if !catenate {
				// Refuse the literal itself: a synchronising one is
				// never sent, a non-synchronising one is skipped.
				if n, nonSync, ok := r.literalHeader(); ok {
					r.refuse(n, nonSync, refusal)
				}
				break
			}
			// The rest, literals too, is skipped with the command.
			r.fail(refusal)
			break
		}
		var body *mailstore.Staged
		if catenate {
			body, err = sess.catenate(maxSize)
		} else {
			if n, ok := r.peekLiteralSize(); ok && hasQuota && quota.Limit >= 0 && quota.Used+total+n > quota.Limit*1024 {
				if n, nonSync, ok := r.literalHeader(); ok {
					r.refuse(n, nonSync, noCode("OVERQUOTA", "Over quota"))
				}
				break
			}
			lit, n := r.literal(maxSize)
			if r.err != nil {
				break
			}
			body, err = sess.srv.cfg.Store.Stage(context.Background(), lit, 0)
			if err == nil && body.Size() != n {
				_ = body.Discard()
				discard()
				return "", errors.New("imap: literal ended early")
			}
		}
		if err != nil {
			discard()
			if isConnError(err) {
				return "", err
			}
			r.fail(err)
			break
		}
		if catenate && hasQuota && quota.Limit >= 0 && quota.Used+total+body.Size() > quota.Limit*1024 {
			// A literal's size is known before it is read; a joined
			// message's only once it is staged.
			_ = body.Discard()
			discard()
			return "", noCode("OVERQUOTA", "Over quota")
		}
		total += body.Size()
		staged = append(staged, mailstore.NewMessage{Flags: flags, InternalDate: date, Body: body})
		if !catenate {
			r.resume()
		}
		if r.atEOL() {
			break
		}
	}
	if err := r.end(); err != nil {
		discard()
		return "", err
	}
	res, err := sess.srv.cfg.Store.Append(name, staged)
	if err != nil {
		discard()
		return "", storeError(err)
	}
	return "APPENDUID " + itoa(res.UIDValidity) + " " + uidSetString(res.UIDs), nil
}

// peekLiteralSize reports the size of the literal announced at the
// reader's position, without consuming it.
func (r *reader) peekLiteralSize() (int64, bool) {
	if r.peek() != '{' {
		return 0, false
	}
	rest := r.line[r.pos:]
	if n, nonSync := trailingLiteral(rest); nonSync {
		return n, true
	}
	if len(rest) > 2 && rest[len(rest)-1] == '}' {
		var n int64
		for _, c := range rest[1 : len(rest)-1] {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int64(c-'0')
		}
		return n, true
	}
	return 0, false
}
