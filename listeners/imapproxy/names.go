package imapproxy

import (
	"bytes"
	"slices"
	"strings"

	"github.com/rookery/rookery/listeners/frontend"
	"github.com/rookery/rookery/store"
)

// Names follow Cyrus's default namespace (altnamespace: no), as backends
// interpret them for the same user: the user's own "user.alice" is
// "INBOX" and "user.alice.sub" is "INBOX.sub"; other users' mailboxes are
// under "user."; shared ones at the top level. With unixhierarchysep the
// separator clients see is '/', and a '.' within a level is '^' inside,
// as Cyrus has it: "INBOX/a.b" is "user.alice.a^b". Commands carry names
// to backends as the client gave them (backends use the same separator);
// the proxy converts only to look them up.

// deletedPrefix is where Cyrus's delayed delete parks mailboxes; they are
// not for clients to see.
const deletedPrefix = "DELETED."

// implicitOwnerRights are the rights a user always has on their own
// mailboxes (Cyrus's implicit_owner_rights default).
const implicitOwnerRights = "lkxan"

// internal returns the internal name for the client's name ext.
func (s *session) internal(ext string) string {
	inbox := frontend.UserInbox(s.user)
	switch {
	case strings.EqualFold(ext, "INBOX"):
		return inbox
	case len(ext) > 6 && strings.EqualFold(ext[:5], "INBOX") && ext[5] == s.sep:
		return inbox + s.levels(ext[5:])
	}
	return s.levels(ext)
}

// external returns the client's name for the internal name in.
func (s *session) external(in string) string {
	inbox := frontend.UserInbox(s.user)
	switch {
	case in == inbox:
		return "INBOX"
	case strings.HasPrefix(in, inbox) && in[len(inbox)] == '.':
		return "INBOX" + s.unlevels(in[len(inbox):])
	}
	return s.unlevels(in)
}

// levels turns a name with the client's separator into the internal
// form; unlevels the other way. With '.' both are the identity.
func (s *session) levels(ext string) string {
	if s.sep == '.' {
		return ext
	}
	return unixSep.Replace(ext)
}

func (s *session) unlevels(in string) string {
	if s.sep == '.' {
		return in
	}
	return cyrusSep.Replace(in)
}

var (
	unixSep  = strings.NewReplacer(".", "^", "/", ".")
	cyrusSep = strings.NewReplacer("^", ".", ".", "/")
)

// sortKey orders the client's names as Cyrus lists them.
func (s *session) sortKey(ext string) []byte { return store.DBName(s.levels(ext)) }

// rights returns the rights the session's user has on e, from its Cyrus
// ACL ("id\trights\t..."): the user's and anyone's, less negative
// entries ("-id"), plus the owner's implicit rights. Admins have all.
func (s *session) rights(e *store.Entry) string {
	if s.admin {
		return "lrswipkxtecdan"
	}
	var pos, neg []byte
	f := strings.Split(e.ACL, "\t")
	for i := 0; i+1 < len(f); i += 2 {
		id, r := f[i], f[i+1]
		negative := strings.HasPrefix(id, "-")
		id = strings.TrimPrefix(id, "-")
		if id != s.user && id != "anyone" {
			continue
		}
		if negative {
			neg = append(neg, r...)
		} else {
			pos = append(pos, r...)
		}
	}
	inbox := frontend.UserInbox(s.user)
	if e.Name == inbox || strings.HasPrefix(e.Name, inbox+".") {
		pos = append(pos, implicitOwnerRights...)
	}
	var out []byte
	for _, c := range pos {
		if bytes.IndexByte(neg, c) < 0 && bytes.IndexByte(out, c) < 0 {
			out = append(out, c)
		}
	}
	return string(out)
}

// listItem is one line of a LIST answer.
type listItem struct {
	name     string
	noselect bool
	children bool
}

// list answers LIST from the mailbox list.
func (s *session) list(ref string, patterns []string) error {
	items, err := s.listItems(ref, patterns)
	if err != nil {
		return err
	}
	for _, it := range items {
		s.writeListItem(it)
	}
	return nil
}

// listItems finds the mailboxes the user may look up ('l') that match
// any of the patterns, with whether they have children, and, for patterns
// ending in '%', the parents that are not mailboxes (\Noselect, RFC 3501
// 6.3.8); INBOX first, then in list order.
func (s *session) listItems(ref string, patterns []string) ([]*listItem, error) {
	pats := make([]string, len(patterns))
	for i, p := range patterns {
		pats[i] = canonicalPattern(ref+p, s.sep)
	}
	matches := func(n string) bool {
		return slices.ContainsFunc(pats, func(p string) bool { return match(p, n, s.sep) })
	}
	server := map[string]string{}
	var names []string
	err := s.visible(func(e *store.Entry, ext string) {
		server[ext] = e.Server()
		names = append(names, ext)
	})
	if err != nil {
		return nil, err
	}
	parents := map[string]bool{}
	for _, n := range names {
		for i := 0; i < len(n); i++ {
			if n[i] == s.sep {
				parents[n[:i]] = true
			}
		}
	}
	var out []*listItem
	for _, n := range names {
		if matches(n) {
			out = append(out, &listItem{name: n, children: parents[n]})
		}
	}
	for p := range parents {
		if _, ok := server[p]; !ok && slices.ContainsFunc(pats, func(pat string) bool { return strings.HasSuffix(pat, "%") && match(pat, p, s.sep) }) {
			out = append(out, &listItem{name: p, noselect: true, children: true})
		}
	}
	slices.SortFunc(out, func(a, b *listItem) int {
		if (a.name == "INBOX") != (b.name == "INBOX") {
			if a.name == "INBOX" {
				return -1
			}
			return 1
		}
		return bytes.Compare(s.sortKey(a.name), s.sortKey(b.name))
	})
	return out, nil
}

func (s *session) writeListItem(it *listItem) {
	var attrs []string
	if it.noselect {
		attrs = append(attrs, `\Noselect`)
	}
	if it.children {
		attrs = append(attrs, `\HasChildren`)
	} else {
		attrs = append(attrs, `\HasNoChildren`)
	}
	s.untagged("LIST (" + strings.Join(attrs, " ") + `) "` + string(s.sep) + `" ` + astring(it.name))
}

// visible calls f, in no set order, for each active mailbox the user may
// look up ('l'), with its name as the client sees it.
func (s *session) visible(f func(e *store.Entry, ext string)) error {
	snap := s.srv.cfg.DB.Snapshot()
	defer snap.Close()
	return s.candidates(snap, func(e *store.Entry) {
		if strings.ContainsRune(s.rights(e), 'l') {
			f(e, s.external(e.Name))
		}
	})
}

// candidates calls fn, once each and in no set order, for every active
// mailbox (not one kept by delayed delete) on which the user may hold
// rights. An admin may hold them on every mailbox and reads the whole
// list; a user's are found through the list's indexes: her INBOX's
// subtree and what is granted to her and to anyone, as no other entry
// gives her a right. So the cost follows what she may see, not the size
// of the list.
func (s *session) candidates(snap *store.Snapshot, fn func(e *store.Entry)) error {
	var seen map[string]bool // a mailbox may be reached by more than one index
	each := func(e store.Entry) error {
		if e.Kind != store.Active || strings.HasPrefix(e.Name, deletedPrefix) {
			return nil
		}
		if seen != nil {
			if seen[e.Name] {
				return nil
			}
			seen[e.Name] = true
		}
		fn(&e)
		return nil
	}
	if s.admin {
		return snap.Scan(each)
	}
	seen = map[string]bool{}
	if err := snap.Subtree(frontend.UserInbox(s.user), each); err != nil {
		return err
	}
	if err := snap.Granted(s.user, each); err != nil {
		return err
	}
	return snap.Granted("anyone", each)
}

// canonicalPattern upper-cases a leading INBOX, which is case-insensitive.
func canonicalPattern(p string, sep byte) string {
	if len(p) >= 5 && strings.EqualFold(p[:5], "INBOX") && (len(p) == 5 || p[5] == sep) {
		return "INBOX" + p[5:]
	}
	return p
}

// match reports whether name matches a LIST pattern: '*' matches
// anything, '%' anything but the separator. It is a dynamic programme
// over pattern and name, so hostile patterns cost no more than their
// length times the name's.
func match(pat, name string, sep byte) bool {
	// ok[j]: pat[:i] matches name[:j], for the current i.
	ok := make([]bool, len(name)+1)
	ok[0] = true
	for i := 0; i < len(pat); i++ {
		c := pat[i]
		switch c {
		case '*', '%':
			// ok[j] stays true; extend over any run the wildcard covers.
			for j := 1; j <= len(name); j++ {
				if !ok[j] && ok[j-1] && (c == '*' || name[j-1] != sep) {
					ok[j] = true
				}
			}
		default:
			for j := len(name); j >= 1; j-- {
				ok[j] = ok[j-1] && name[j-1] == c
			}
			ok[0] = false
		}
	}
	return ok[len(name)]
}
