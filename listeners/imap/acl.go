package imap

import (
	"strings"
)

// rights is a set of Cyrus ACL rights (RFC 4314 plus Cyrus's "n").
type rights uint16

const (
	rLookup     rights = 1 << iota // l
	rRead                          // r
	rSeen                          // s
	rWrite                         // w
	rInsert                        // i
	rPost                          // p
	rCreate                        // k
	rDeleteMbox                    // x
	rDeleteMsg                     // t
	rExpunge                       // e
	rAdmin                         // a
	rAnnotate                      // n
)

const allRights = rLookup | rRead | rSeen | rWrite | rInsert | rPost | rCreate |
	rDeleteMbox | rDeleteMsg | rExpunge | rAdmin | rAnnotate

// implicitOwner is what a user always has on mailboxes under its INBOX
// (Cyrus 3's implicit_owner_rights), and implicitAdmin what admins have
// everywhere: enough to see, create, delete and re-ACL any mailbox, not
// to read mail unless an ACL says so.
const (
	implicitOwner = rLookup | rCreate | rDeleteMbox | rAdmin | rAnnotate
	implicitAdmin = rLookup | rCreate | rDeleteMbox | rAdmin
)

const rightLetters = "lrswipkxtean"

// parseRights reads a rights string; "c" and "d" are the obsolete RFC 2086
// rights, taken as Cyrus does: "c" is "k", "d" is "te". ok is false for a
// letter that is no right.
func parseRights(s string) (rights, bool) {
	var r rights
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case 'c':
			r |= rCreate
		case 'd':
			r |= rDeleteMsg | rExpunge
		default:
			j := strings.IndexByte(rightLetters, c)
			if j < 0 {
				return 0, false
			}
			r |= 1 << j
		}
	}
	return r, true
}

// String spells rights in Cyrus's order, with the virtual "c" (when "k" is
// held) and "d" (when "t" and "e" are), as Cyrus shows them:
// "lrswipkxtecdan".
func (r rights) String() string {
	var b strings.Builder
	for i := 0; i < len(rightLetters); i++ {
		c := rightLetters[i]
		if c == 'a' {
			if r&rCreate != 0 {
				b.WriteByte('c')
			}
			if r&(rDeleteMsg|rExpunge) == rDeleteMsg|rExpunge {
				b.WriteByte('d')
			}
		}
		if r&(1<<i) != 0 {
			b.WriteByte(c)
		}
	}
	return b.String()
}

type aclEntry struct {
	id     string
	rights string
}

// parseACL splits a Cyrus ACL ("id\trights\t...").
func parseACL(acl string) []aclEntry {
	f := strings.Split(acl, "\t")
	var out []aclEntry
	for i := 0; i+1 < len(f); i += 2 {
		if f[i] != "" {
			out = append(out, aclEntry{id: f[i], rights: f[i+1]})
		}
	}
	return out
}

func formatACL(entries []aclEntry) string {
	var b strings.Builder
	for _, e := range entries {
		b.WriteString(e.id)
		b.WriteByte('\t')
		b.WriteString(e.rights)
		b.WriteByte('\t')
	}
	return b.String()
}

// myRights computes user's rights on a mailbox: the union of the entries
// for the user and "anyone", less the negative ("-id") entries, plus the
// implicit rights of owners and admins.
func myRights(acl, name, user string, admin bool) rights {
	var pos, neg rights
	for _, e := range parseACL(acl) {
		id, negative := strings.CutPrefix(e.id, "-")
		if id != user && id != "anyone" {
			continue
		}
		r, _ := parseRights(e.rights)
		if negative {
			neg |= r
		} else {
			pos |= r
		}
	}
	r := pos &^ neg
	if owner(name) == user {
		r |= implicitOwner
	}
	if admin {
		r |= implicitAdmin
	}
	return r
}

// setACL returns acl with id's rights changed: mode '+' adds, '-' removes,
// 0 replaces; an id left with no rights is dropped.
func setACL(acl, id string, mode byte, r rights) string {
	entries := parseACL(acl)
	found := false
	for i := 0; i < len(entries); i++ {
		e := &entries[i]
		if e.id != id {
			continue
		}
		found = true
		old, _ := parseRights(e.rights)
		switch mode {
		case '+':
			r |= old
		case '-':
			r = old &^ r
		}
		if r == 0 {
			entries = append(entries[:i], entries[i+1:]...)
			i--
			continue
		}
		e.rights = r.String()
	}
	if !found && mode != '-' && r != 0 {
		entries = append(entries, aclEntry{id: id, rights: r.String()})
	}
	return formatACL(entries)
}
