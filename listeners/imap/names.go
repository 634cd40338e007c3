package imap

import (
	"strings"

	"github.com/rookery/rookery/internal/mboxname"
)

// namespace converts between the names a client sees and internal names,
// as a Cyrus backend with altnamespace off does: the user's "user.alice"
// is INBOX, its children INBOX<sep>x, everything else keeps its name with
// '.' shown as the separator. With separator '/' a '.' inside a level is
// stored as '^' (so "INBOX/a.b" is "user.alice.a^b"), as are dots in
// user names.
type namespace struct {
	sep byte
}

// userPart is the internal form of a user name as one hierarchy level.
func userPart(user string) string { return strings.ReplaceAll(user, ".", "^") }

// inbox is user's internal INBOX name.
func inbox(user string) string { return "user." + userPart(user) }

// owner returns the user owning an internal name ("" for shared ones).
func owner(name string) string {
	rest, ok := strings.CutPrefix(name, "user.")
	if !ok {
		return ""
	}
	u, _, _ := strings.Cut(rest, ".")
	return strings.ReplaceAll(u, "^", ".")
}

// isInbox reports whether name is some user's INBOX.
func isInbox(name string) bool {
	rest, ok := strings.CutPrefix(name, "user.")
	return ok && rest != "" && !strings.Contains(rest, ".")
}

// internal returns the internal name of ext for user; ok is false for a
// name that cannot be one (empty level, bad characters).
func (ns namespace) internal(user, ext string) (string, bool) {
	ext = strings.TrimSuffix(ext, string(ns.sep))
	if ext == "" {
		return "", false
	}
	parts := strings.Split(ext, string(ns.sep))
	for i, p := range parts {
		if p == "" || mboxname.CheckControl(p) != nil {
			return "", false
		}
		if ns.sep == '/' {
			if strings.Contains(p, "^") {
				return "", false
			}
			p = strings.ReplaceAll(p, ".", "^")
		}
		parts[i] = p
	}
	if strings.EqualFold(parts[0], "INBOX") {
		parts[0] = inbox(user)
	}
	return strings.Join(parts, "."), true
}

// checkName refuses an internal name that may not be created or named as
// a target (internal/mboxname): one the master would list to every
// frontend and client, that some of them could not then use. Existing
// names are not checked, so a mailbox made before the check can still
// be selected, renamed to a valid name or deleted.
func checkName(name string) error {
	if mboxname.Check(name) != nil {
		return no("Invalid mailbox name")
	}
	return nil
}

// external returns the name user sees for an internal name.
func (ns namespace) external(user, name string) string {
	ib := inbox(user)
	switch {
	case name == ib:
		return "INBOX"
	case strings.HasPrefix(name, ib+"."):
		return "INBOX" + string(ns.sep) + ns.level(name[len(ib)+1:])
	}
	return ns.level(name)
}

func (ns namespace) level(s string) string {
	if ns.sep == '.' {
		return s
	}
	return strings.NewReplacer(".", "/", "^", ".").Replace(s)
}

// parent returns an internal name's parent ("" at the top).
func parent(name string) string {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return ""
	}
	return name[:i]
}
