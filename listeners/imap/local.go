package imap

// LOCALCREATE and LOCALDELETE are Cyrus's backend commands for murder
// repair and mailbox moves: they create or delete a mailbox on this
// backend only, without telling the MUPDATE master, for an admin who
// fixes the list by other means (the master's own commands, or a push at
// the next start). Anyone else is told the commands do not exist, as
// Cyrus does.

// cmdLocalCreate handles "LOCALCREATE mailbox [partition]".
func cmdLocalCreate(sess *session, _ string, _ bool) (string, error) {
	if !sess.id.Admin {
		return "", bad("Unrecognized command")
	}
	r := sess.r
	r.sp()
	ext, name := sess.mailboxArg()
	if r.maybeSP() {
		r.astring() // the partition: there is one here
	}
	if err := r.end(); err != nil {
		return "", err
	}
	if err := checkNewName(ext, name); err != nil {
		return "", err
	}
	srv := sess.srv
	srv.mboxMu.Lock()
	defer srv.mboxMu.Unlock()
	acl, err := sess.newMailboxACL(name)
	if err != nil {
		return "", err
	}
	if _, err := srv.cfg.Store.CreateMailbox(name, acl, ""); err != nil {
		return "", storeError(err)
	}
	sess.log.Info("imap: mailbox created here only (LOCALCREATE)", "mailbox", name, "user", sess.id.User)
	return "", nil
}

// cmdLocalDelete handles "LOCALDELETE mailbox".
func cmdLocalDelete(sess *session, _ string, _ bool) (string, error) {
	if !sess.id.Admin {
		return "", bad("Unrecognized command")
	}
	r := sess.r
	r.sp()
	_, name := sess.mailboxArg()
	if err := r.end(); err != nil {
		return "", err
	}
	srv := sess.srv
	srv.mboxMu.Lock()
	defer srv.mboxMu.Unlock()
	m, ok, err := srv.cfg.Store.Mailbox(name)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", no("Mailbox does not exist")
	}
	if sess.sel != nil && sess.sel.id == m.ID {
		sess.unselect()
	}
	if err := srv.cfg.Store.DeleteMailbox(name); err != nil {
		return "", storeError(err)
	}
	sess.log.Info("imap: mailbox deleted here only (LOCALDELETE)", "mailbox", name, "user", sess.id.User)
	return "", nil
}
