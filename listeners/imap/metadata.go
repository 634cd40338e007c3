package imap

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/rookery/rookery/store/mailstore"
)

// METADATA and METADATA-SERVER (RFC 5464): entries on mailboxes and on
// the server, "/private/..." per user and "/shared/..." for all. Stored
// entries live in the mail store; a few are computed and read-only:
// the Cyrus vendor entries a Cyrus frontend asks its backends for (a
// mailbox's size, partition and server; the server's free space, which a
// Cyrus frontend's serverlist selection reads) and /private/specialuse
// (RFC 6154 4), which is the mailbox's special use and may be set.
//
// Rights, as Cyrus applies them: reading a mailbox's /private entries
// needs l, its /shared ones l and r; setting /private needs l, /shared l
// and w. The server's /shared entries are set by admins only.

// Limits on what a user may store.
const (
	// maxMetadataEntries bounds the entries one owner keeps on one
	// mailbox (or on the server).
	maxMetadataEntries = 1000
	// maxEntryName bounds an entry's name.
	maxEntryName = 1024
)

const (
	vendorPrefix     = "/shared/vendor/cmu/cyrus-imapd/"
	entrySpecialUse  = "/private/specialuse"
	entryFreeSpace   = vendorPrefix + "freespace/total"
	entryMailboxSize = vendorPrefix + "size"
)

// checkEntry validates an entry name (RFC 5464 3.2) and returns it in
// lower case: names compare case-insensitively.
func checkEntry(e string) (string, error) {
	e = strings.ToLower(e)
	if len(e) > maxEntryName {
		return "", bad("Entry name too long")
	}
	if !strings.HasPrefix(e, "/private/") && !strings.HasPrefix(e, "/shared/") {
		return "", badf("Entry %q is neither /private nor /shared", e)
	}
	if strings.HasSuffix(e, "/") || strings.Contains(e, "//") {
		return "", badf("Invalid entry name %q", e)
	}
	for i := 0; i < len(e); i++ {
		if c := e[i]; c <= ' ' || c >= 0x7f || c == '*' || c == '%' {
			return "", badf("Invalid entry name %q", e)
		}
	}
	return e, nil
}

// metadataTarget is the mailbox an entry command is about, or the server.
type metadataTarget struct {
	ext    string // as the client named it
	server bool
	m      mailstore.Mailbox
	rights rights
}

func (sess *session) metadataTarget() (metadataTarget, error) {
	r := sess.r
	ext := sess.fromWire(r.astring())
	if r.err != nil {
		return metadataTarget{}, r.err
	}
	if ext == "" {
		return metadataTarget{server: true}, nil
	}
	if strings.EqualFold(ext, "INBOX") {
		ext = "INBOX"
	}
	name, ok := sess.srv.ns.internal(sess.id.User, ext)
	if !ok {
		return metadataTarget{}, no("Invalid mailbox name")
	}
	m, rt, err := sess.lookup(name)
	if err != nil {
		return metadataTarget{}, err
	}
	return metadataTarget{ext: ext, m: m, rights: rt}, nil
}

// canRead tells whether the session may read entry on t.
func (t *metadataTarget) canRead(entry string) bool {
	if t.server {
		return true
	}
	if strings.HasPrefix(entry, "/private/") {
		return t.rights&rLookup != 0
	}
	return t.rights&(rLookup|rRead) == rLookup|rRead
}

// cmdGetMetadata handles GETMETADATA (RFC 5464 4.2).
func cmdGetMetadata(sess *session, _ string, _ bool) (string, error) {
	r := sess.r
	r.sp()
	maxSize := int64(-1)
	depth := 0
	if r.peek() == '(' {
		r.list(func() {
			switch opt := strings.ToUpper(r.atom()); opt {
			case "MAXSIZE":
				r.sp()
				maxSize = int64(r.number(false))
			case "DEPTH":
				r.sp()
				switch d := strings.ToLower(r.atom()); d {
				case "0":
					depth = 0
				case "1":
					depth = 1
				case "infinity":
					depth = -1
				default:
					r.fail(badf("Invalid DEPTH %q", d))
				}
			default:
				if r.err == nil {
					r.fail(badf("Unknown GETMETADATA option %s", opt))
				}
			}
		})
		r.sp()
	}
	t, err := sess.metadataTarget()
	if err != nil {
		return "", err
	}
	r.sp()
	var entries []string
	if r.peek() == '(' {
		r.list(func() { entries = append(entries, r.astring()) })
	} else {
		entries = append(entries, r.astring())
	}
	if err := r.end(); err != nil {
		return "", err
	}
	for i, e := range entries {
		if entries[i], err = checkEntry(e); err != nil {
			return "", err
		}
	}
	all, err := sess.metadataOf(&t)
	if err != nil {
		return "", err
	}
	type kv struct {
		entry string
		value []byte
	}
	var out []kv
	var longest int64
	for _, e := range entries {
		if !t.canRead(e) {
			continue
		}
		if v, ok := all[e]; ok {
			out = append(out, kv{e, v})
		} else if depth == 0 {
			out = append(out, kv{e, nil})
		}
		if depth != 0 {
			var below []string
			for name := range all {
				rest, ok := strings.CutPrefix(name, e+"/")
				if ok && (depth < 0 || !strings.Contains(rest, "/")) && t.canRead(name) {
					below = append(below, name)
				}
			}
			slices.Sort(below)
			for _, name := range below {
				out = append(out, kv{name, all[name]})
			}
		}
	}
	if len(out) > 0 {
		w := sess.w
		w.raw("* METADATA ")
		if t.server {
			w.raw(`""`)
		} else {
			w.astr(sess.toWire(t.ext))
		}
		w.raw(" (")
		n := 0
		for _, e := range out {
			if maxSize >= 0 && int64(len(e.value)) > maxSize {
				longest = max(longest, int64(len(e.value)))
				continue
			}
			if n > 0 {
				w.raw(" ")
			}
			n++
			w.str(e.entry).raw(" ")
			if e.value == nil {
				w.raw("NIL")
			} else {
				w.str(string(e.value))
			}
		}
		w.raw(")\r\n")
	}
	if longest > 0 {
		return "METADATA LONGENTRIES " + strconv.FormatInt(longest, 10), nil
	}
	return "", nil
}

// metadataOf returns every entry the session may ask for on t: the
// user's /private ones, the /shared ones and the computed ones.
func (sess *session) metadataOf(t *metadataTarget) (map[string][]byte, error) {
	all := map[string][]byte{}
	id := uint64(mailstore.ServerMetadata)
	if !t.server {
		id = t.m.ID
	}
	view := sess.srv.cfg.Store.View()
	defer view.Close()
	for _, owner := range []string{sess.id.User, ""} {
		if err := view.Metadata(id, owner, func(e string, v []byte) bool {
			if strings.HasPrefix(e, "/private/") == (owner != "") {
				all[e] = v
			}
			return true
		}); err != nil {
			return nil, err
		}
	}
	if t.server {
		if f := sess.srv.cfg.DiskSpace; f != nil {
			if avail, total, err := f(); err == nil {
				all[entryFreeSpace] = fmt.Appendf(nil, "%d;%d", avail>>10, total>>10)
			} else {
				sess.log.Warn("imap: free space", "err", err)
			}
		}
		return all, nil
	}
	all[vendorPrefix+"partition"] = []byte("default")
	all[vendorPrefix+"server"] = []byte(sess.srv.cfg.ServerName)
	all[entryMailboxSize] = strconv.AppendInt(nil, t.m.Size, 10)
	all[vendorPrefix+"uniqueid"] = fmt.Appendf(nil, "%016x%08x", t.m.ID, t.m.UIDValidity)
	if t.m.SpecialUse != "" {
		all[entrySpecialUse] = []byte(t.m.SpecialUse)
	}
	return all, nil
}

// cmdSetMetadata handles SETMETADATA (RFC 5464 4.3): every entry is set,
// or none.
func cmdSetMetadata(sess *session, _ string, _ bool) (string, error) {
	r := sess.r
	r.sp()
	t, err := sess.metadataTarget()
	if err != nil {
		return "", err
	}
	r.sp()
	values := map[string][]byte{}
	var names []string
	r.list(func() {
		e := r.astring()
		r.sp()
		var v []byte
		if hasPrefixFold(string(r.line[r.pos:]), "NIL") && (r.pos+3 == len(r.line) || r.line[r.pos+3] == ' ' || r.line[r.pos+3] == ')') {
			r.pos += 3
		} else {
			v = []byte(r.str())
		}
		if r.err == nil {
			names = append(names, e)
			values[e] = v
		}
	})
	if err := r.end(); err != nil {
		return "", err
	}
	private, shared := map[string][]byte{}, map[string][]byte{}
	specialUse, setSpecialUse := "", false
	for _, raw := range names {
		e, err := checkEntry(raw)
		if err != nil {
			return "", err
		}
		v := values[raw]
		switch {
		case int64(len(v)) > sess.srv.cfg.MaxString:
			return "", noCode("METADATA MAXSIZE "+strconv.FormatInt(sess.srv.cfg.MaxString, 10), "Value too long")
		case e == entrySpecialUse && !t.server:
			use, err := specialUseValue(v)
			if err != nil {
				return "", err
			}
			specialUse, setSpecialUse = use, true
			continue
		case strings.HasPrefix(e, vendorPrefix), e == entrySpecialUse:
			return "", no("Entry " + e + " is read-only")
		}
		if strings.HasPrefix(e, "/private/") {
			private[e] = v
		} else {
			shared[e] = v
		}
	}
	switch {
	case t.server && len(shared) > 0 && !sess.id.Admin:
		return "", no("Permission denied: only admins set server /shared entries")
	case !t.server && t.rights&rLookup == 0:
		return "", no("Permission denied")
	case !t.server && len(shared) > 0 && t.rights&rWrite == 0:
		return "", no("Permission denied: /shared entries need the w right")
	case setSpecialUse && t.rights&rWrite == 0 && !sess.id.Admin:
		// Cyrus lets the owner set it; the owner has w on her mailboxes.
		return "", no("Permission denied: /private/specialuse needs the w right")
	}
	st := sess.srv.cfg.Store
	id := uint64(mailstore.ServerMetadata)
	if !t.server {
		id = t.m.ID
	}
	for owner, set := range map[string]map[string][]byte{sess.id.User: private, "": shared} {
		if len(set) == 0 {
			continue
		}
		if err := st.SetMetadata(t.m.Name, id, owner, set, maxMetadataEntries); err != nil {
			if errors.Is(err, mailstore.ErrTooManyEntries) {
				return "", noCode("METADATA TOOMANY", fmt.Sprintf("Over %d entries", maxMetadataEntries))
			}
			return "", storeError(err)
		}
	}
	if setSpecialUse {
		if err := st.SetSpecialUse(t.m.Name, specialUse); err != nil {
			return "", storeError(err)
		}
	}
	return "", nil
}

// specialUseValue checks a /private/specialuse value: one special-use
// attribute of RFC 6154 (or none), as this server keeps one per mailbox.
func specialUseValue(v []byte) (string, error) {
	s := strings.TrimSpace(string(v))
	if v == nil || s == "" {
		return "", nil
	}
	i := slices.IndexFunc(specialUses, func(u string) bool { return strings.EqualFold(u, s) })
	if i < 0 {
		return "", noCode("USEATTR", "Unknown or unsupported special use "+strconv.Quote(s))
	}
	return specialUses[i], nil
}
