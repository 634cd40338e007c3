package imap

import (
	"strings"

	"github.com/rookery/rookery/store/mailstore"
)

// cmdSetACL handles SETACL and DELETEACL (RFC 4314): the new ACL goes to
// the registry first, so an unreachable master changes nothing.
func cmdSetACL(sess *session, _ string, _ bool) (string, error) {
	r := sess.r
	r.sp()
	_, name := sess.mailboxArg()
	r.sp()
	id := r.astring()
	var rightsText string
	del := sess.cmd == "DELETEACL"
	if !del {
		r.sp()
		rightsText = r.astring()
	}
	if err := r.end(); err != nil {
		return "", err
	}
	var mode byte
	if !del && rightsText != "" && (rightsText[0] == '+' || rightsText[0] == '-') {
		mode, rightsText = rightsText[0], rightsText[1:]
	}
	rt, ok := parseRights(rightsText)
	if !ok {
		return "", bad("Invalid rights")
	}
	if id == "" || strings.ContainsAny(id, "\t\r\n") {
		return "", no("Invalid identifier")
	}
	srv := sess.srv
	srv.mboxMu.Lock()
	defer srv.mboxMu.Unlock()
	m, have, err := sess.lookup(name)
	if err != nil {
		return "", err
	}
	if err := need(have, rAdmin); err != nil {
		return "", err
	}
	var acl string
	if del {
		acl = removeACL(m.ACL, id)
	} else {
		acl = setACL(m.ACL, id, mode, rt)
	}
	if acl == m.ACL {
		return "", nil
	}
	ctx, cancel := sess.registryCtx()
	defer cancel()
	if err := srv.cfg.Registry.Activate(ctx, name, acl); err != nil {
		sess.log.Warn("imap: registry refused ACL change", "mailbox", name, "err", err)
		return "", registryError(err)
	}
	if err := srv.cfg.Store.SetACL(name, acl); err != nil {
		sess.undo("activate old ACL", name, srv.cfg.Registry.Activate(ctx, name, m.ACL))
		return "", storeError(err)
	}
	if sess.sel != nil && sess.sel.id == m.ID {
		sess.sel.rights = sess.rightsOn(&mailstore.Mailbox{Name: m.Name, ACL: acl})
	}
	return "", nil
}

func removeACL(acl, id string) string {
	var out []aclEntry
	for _, e := range parseACL(acl) {
		if e.id != id {
			out = append(out, e)
		}
	}
	return formatACL(out)
}

func cmdGetACL(sess *session, _ string, _ bool) (string, error) {
	r := sess.r
	r.sp()
	ext, name := sess.mailboxArg()
	if err := r.end(); err != nil {
		return "", err
	}
	m, have, err := sess.lookup(name)
	if err != nil {
		return "", err
	}
	if err := need(have, rAdmin); err != nil {
		return "", err
	}
	w := sess.w
	w.raw("* ACL ").astr(sess.toWire(ext))
	for _, e := range parseACL(m.ACL) {
		rt, _ := parseRights(e.rights)
		w.raw(" ").astr(e.id).raw(" ").astr(rt.String())
	}
	w.raw("\r\n")
	return "", nil
}

func cmdMyRights(sess *session, _ string, _ bool) (string, error) {
	r := sess.r
	r.sp()
	ext, name := sess.mailboxArg()
	if err := r.end(); err != nil {
		return "", err
	}
	_, have, err := sess.lookup(name)
	if err != nil {
		return "", err
	}
	sess.w.raw("* MYRIGHTS ").astr(sess.toWire(ext)).raw(" ").astr(have.String()).raw("\r\n")
	return "", nil
}

func cmdListRights(sess *session, _ string, _ bool) (string, error) {
	r := sess.r
	r.sp()
	ext, name := sess.mailboxArg()
	r.sp()
	id := r.astring()
	if err := r.end(); err != nil {
		return "", err
	}
	m, have, err := sess.lookup(name)
	if err != nil {
		return "", err
	}
	if err := need(have, rAdmin); err != nil {
		return "", err
	}
	var required rights
	if owner(m.Name) == id {
		required = implicitOwner
	}
	w := sess.w
	w.raw("* LISTRIGHTS ").astr(sess.toWire(ext)).raw(" ").astr(id).raw(" ")
	if required == 0 {
		w.raw(`""`)
	} else {
		w.astr(required.String())
	}
	for i := 0; i < len(rightLetters); i++ {
		if required&(1<<i) == 0 {
			w.raw(" ").raw(rightLetters[i : i+1])
		}
	}
	w.raw("\r\n")
	return "", nil
}

func (sess *session) writeQuota(q mailstore.Quota) {
	w := sess.w
	w.raw("* QUOTA ").astr(sess.toWire(sess.srv.ns.external(sess.id.User, q.Root))).raw(" (")
	if q.Limit >= 0 {
		w.raw("STORAGE ").num(uint64(q.Used / 1024)).raw(" ").num(uint64(q.Limit))
	}
	w.raw(")\r\n")
}

func cmdGetQuotaRoot(sess *session, _ string, _ bool) (string, error) {
	r := sess.r
	r.sp()
	ext, name := sess.mailboxArg()
	if err := r.end(); err != nil {
		return "", err
	}
	if _, _, err := sess.lookup(name); err != nil {
		return "", err
	}
	q, ok, err := sess.srv.cfg.Store.QuotaRoot(name)
	if err != nil {
		return "", err
	}
	w := sess.w
	w.raw("* QUOTAROOT ").astr(sess.toWire(ext))
	if ok {
		w.raw(" ").astr(sess.toWire(sess.srv.ns.external(sess.id.User, q.Root)))
	}
	w.raw("\r\n")
	if ok {
		sess.writeQuota(q)
	}
	return "", nil
}

func cmdGetQuota(sess *session, _ string, _ bool) (string, error) {
	r := sess.r
	r.sp()
	_, root := sess.mailboxArg()
	if err := r.end(); err != nil {
		return "", err
	}
	if !sess.id.Admin && owner(root) != sess.id.User {
		return "", no("Permission denied")
	}
	q, ok, err := sess.srv.cfg.Store.Quota(root)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", no("Quota root does not exist")
	}
	sess.writeQuota(q)
	return "", nil
}

// cmdSetQuota sets a storage limit (KiB) on a root, admins only; an empty
// list removes the root.
func cmdSetQuota(sess *session, _ string, _ bool) (string, error) {
	r := sess.r
	r.sp()
	_, root := sess.mailboxArg()
	r.sp()
	limit, remove := int64(-1), true
	r.list(func() {
		res := strings.ToUpper(r.atom())
		r.sp()
		n := r.number(false)
		if res == "STORAGE" {
			limit, remove = int64(n), false
		} else if r.err == nil {
			r.fail(noCode("UNKNOWN-RESOURCE", "Unknown quota resource "+res))
		}
	})
	if err := r.end(); err != nil {
		return "", err
	}
	if !sess.id.Admin {
		return "", no("Permission denied")
	}
	return "", sess.srv.cfg.Store.SetQuota(root, limit, remove)
}
