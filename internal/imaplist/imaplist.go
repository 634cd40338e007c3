// Package imaplist decides what an extended LIST (RFC 5258, with RFC 5819
// LIST-STATUS, RFC 6154 SPECIAL-USE and the old XLIST) answers, from the
// mailboxes a user may see and the user's subscriptions. The IMAP backend
// and the frontend proxy share it, so both give the same lines; each reads
// the command and writes the lines in its own way.
package imaplist

import (
	"errors"
	"slices"
	"strings"
)

// Options are a LIST command's selection and return options.
type Options struct {
	// Extended is set when the command used RFC 5258 syntax (selection or
	// return options, a pattern list): names that are no mailbox are then
	// \NonExistent rather than \Noselect.
	Extended bool
	// XList is Apple's XLIST: special-use attributes and \Inbox.
	XList bool

	Subscribed, Remote, RecursiveMatch, SpecialUse bool // selection

	ReturnSubscribed, ReturnChildren, ReturnSpecialUse bool
	// Status holds the RETURN (STATUS (...)) items, upper case.
	Status []string
}

// StatusItems are the STATUS items LIST-STATUS may ask for.
var StatusItems = []string{"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "SIZE", "HIGHESTMODSEQ", "MAILBOXID"}

// ErrRecursiveMatch is RECURSIVEMATCH without a selection option that it
// could apply to (RFC 5258 3).
var ErrRecursiveMatch = errors.New("RECURSIVEMATCH needs another selection option")

// Select records a selection option; it reports false for one not known.
func (o *Options) Select(opt string) bool {
	switch strings.ToUpper(opt) {
	case "SUBSCRIBED":
		o.Subscribed = true
	case "REMOTE":
		o.Remote = true
	case "RECURSIVEMATCH":
		o.RecursiveMatch = true
	case "SPECIAL-USE":
		o.SpecialUse = true
	default:
		return false
	}
	return true
}

// Return records a return option other than STATUS; it reports false for
// one not known.
func (o *Options) Return(opt string) bool {
	switch strings.ToUpper(opt) {
	case "SUBSCRIBED":
		o.ReturnSubscribed = true
	case "CHILDREN":
		o.ReturnChildren = true
	case "SPECIAL-USE":
		o.ReturnSpecialUse = true
	default:
		return false
	}
	return true
}

// Check reports options that may not go together.
func (o *Options) Check() error {
	if o.RecursiveMatch && !o.Subscribed && !o.SpecialUse {
		return ErrRecursiveMatch
	}
	return nil
}

// WantSubscriptions reports whether the answer depends on subscriptions.
func (o *Options) WantSubscriptions() bool { return o.Subscribed || o.ReturnSubscribed }

// WantSpecialUse reports whether the answer shows special-use attributes.
func (o *Options) WantSpecialUse() bool { return o.SpecialUse || o.ReturnSpecialUse || o.XList }

// Mailbox is a name the user may see: a mailbox, or a parent of some that
// is none itself.
type Mailbox struct {
	Name     string // as the client sees it
	Exists   bool
	Children bool     // it has children the user may see
	Special  []string // special-use attributes
}

// Line is one LIST response.
type Line struct {
	Name  string
	Attrs []string
	// ChildInfo: the name has a subscribed descendant that no pattern
	// matches (RECURSIVEMATCH): ("CHILDINFO" ("SUBSCRIBED")).
	ChildInfo bool
	// Mailbox is the index in the mailboxes given to List, -1 for a
	// subscription that names no mailbox.
	Mailbox int
}

// List returns the LIST responses for mailboxes (in the order to list
// them, parents before children), the user's subscriptions (names as the
// client sees them), sep the hierarchy separator and match telling
// whether a name matches one of the command's patterns. XLIST marks the
// user's "INBOX" \Inbox.
func List(mailboxes []Mailbox, subs []string, sep byte, match func(string) bool, o *Options) []Line {
	subscribed := make(map[string]bool, len(subs))
	for _, s := range subs {
		subscribed[s] = true
	}
	index := make(map[string]int, len(mailboxes))
	for i, m := range mailboxes {
		index[m.Name] = i
	}
	// selected: the name meets the selection criteria (RECURSIVEMATCH
	// looks for such descendants).
	selected := func(name string) bool {
		if o.Subscribed && !subscribed[name] {
			return false
		}
		if o.SpecialUse {
			i, ok := index[name]
			if !ok || len(mailboxes[i].Special) == 0 {
				return false
			}
		}
		return true
	}
	// childInfo: names that match, with a selected descendant that does
	// not (RFC 5258 3.5, as imaptest's listext checks it).
	childInfo := map[string]bool{}
	if o.RecursiveMatch {
		note := func(name string) {
			if match(name) || !selected(name) {
				return
			}
			for i := strings.LastIndexByte(name, sep); i > 0; i = strings.LastIndexByte(name[:i], sep) {
				if p := name[:i]; match(p) {
					childInfo[p] = true
				}
			}
		}
		for _, m := range mailboxes {
			note(m.Name)
		}
		for _, s := range subs {
			if _, ok := index[s]; !ok {
				note(s)
			}
		}
	}
	var out []Line
	emit := func(name string, i int) {
		sel := match(name) && selected(name)
		if !sel && !childInfo[name] {
			return
		}
		var m Mailbox
		if i >= 0 {
			m = mailboxes[i]
		}
		if i >= 0 && !m.Exists && !o.Subscribed && !childInfo[name] && !(o.SpecialUse && len(m.Special) > 0) {
			// A parent of visible mailboxes, listed so a client
			// walking with '%' finds them (RFC 3501 6.3.8).
			if !m.Children {
				return
			}
		}
		var attrs []string
		switch {
		case m.Exists:
		case o.Extended:
			attrs = append(attrs, `\NonExistent`)
		default:
			attrs = append(attrs, `\Noselect`)
		}
		if o.WantSubscriptions() && subscribed[name] {
			attrs = append(attrs, `\Subscribed`)
		}
		if m.Children {
			attrs = append(attrs, `\HasChildren`)
		} else if m.Exists || (o.ReturnChildren && i >= 0) {
			attrs = append(attrs, `\HasNoChildren`)
		}
		if o.XList && name == "INBOX" {
			attrs = append(attrs, `\Inbox`)
		} else if o.WantSpecialUse() || !o.Extended {
			attrs = append(attrs, m.Special...)
		}
		out = append(out, Line{Name: name, Attrs: attrs, ChildInfo: childInfo[name] && o.Extended, Mailbox: i})
	}
	if o.Subscribed {
		// Subscribed names, and parents with CHILDINFO, in mailbox
		// order; then subscriptions that name no mailbox.
		for i, m := range mailboxes {
			if subscribed[m.Name] || childInfo[m.Name] {
				emit(m.Name, i)
			}
		}
		var rest []string
		for _, s := range subs {
			if _, ok := index[s]; !ok && !slices.Contains(rest, s) {
				rest = append(rest, s)
			}
		}
		for n := range childInfo {
			if _, ok := index[n]; !ok && !slices.Contains(rest, n) {
				rest = append(rest, n)
			}
		}
		slices.Sort(rest)
		for _, n := range rest {
			emit(n, -1)
		}
		return out
	}
	for i, m := range mailboxes {
		emit(m.Name, i)
	}
	return out
}

// Format writes a LIST line after "* ": kind is LIST or XLIST, name the
// mailbox name already encoded as an IMAP astring.
func (l *Line) Format(kind string, sep byte, name string) string {
	var b strings.Builder
	b.WriteString(kind)
	b.WriteString(" (")
	b.WriteString(strings.Join(l.Attrs, " "))
	b.WriteString(`) "`)
	if sep == '"' || sep == '\\' {
		b.WriteByte('\\')
	}
	b.WriteByte(sep)
	b.WriteString(`" `)
	b.WriteString(name)
	if l.ChildInfo {
		b.WriteString(` ("CHILDINFO" ("SUBSCRIBED"))`)
	}
	return b.String()
}

// Change is the unsolicited LIST response by which NOTIFY (RFC 5465 5.4,
// 5.5) tells of a name created, deleted, renamed or (un)subscribed, with
// its attributes as they are now: m.Exists false makes it \NonExistent,
// subscribed adds \Subscribed. name and oldName are already astrings;
// oldName, the name before a rename, goes in RFC 5258's extended data as
// OLDNAME, and is "" for other changes.
func Change(m Mailbox, subscribed bool, sep byte, name, oldName string) string {
	var attrs []string
	if !m.Exists {
		attrs = append(attrs, `\NonExistent`)
	}
	if subscribed {
		attrs = append(attrs, `\Subscribed`)
	}
	if m.Children {
		attrs = append(attrs, `\HasChildren`)
	} else if m.Exists {
		attrs = append(attrs, `\HasNoChildren`)
	}
	l := Line{Attrs: append(attrs, m.Special...)}
	s := l.Format("LIST", sep, name)
	if oldName != "" {
		s += ` ("OLDNAME" (` + oldName + `))`
	}
	return s
}

// Covers reports whether a NOTIFY mailbox filter (RFC 5465 6: INBOXES,
// PERSONAL, SUBSCRIBED, SUBTREE or MAILBOXES, with its names) covers the
// internal name, given the user's INBOX and whether she is subscribed to
// name; the backend and the frontend decide it alike.
func Covers(filter string, names []string, name, inbox string, subscribed bool) bool {
	switch filter {
	case "INBOXES":
		return name == inbox
	case "PERSONAL":
		return name == inbox || strings.HasPrefix(name, inbox+".")
	case "SUBSCRIBED":
		return subscribed
	case "SUBTREE":
		return slices.ContainsFunc(names, func(n string) bool { return name == n || strings.HasPrefix(name, n+".") })
	case "MAILBOXES":
		return slices.Contains(names, name)
	}
	return false
}
