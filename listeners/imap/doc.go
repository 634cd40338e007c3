// Package imap is a backend's IMAP server: IMAP4rev1 (and IMAP4rev2 for
// a client that enables it, rev2.go) with IDLE, UIDPLUS, MOVE, LITERAL+,
// MULTIAPPEND, NAMESPACE, ID, ENABLE, CONDSTORE, QRESYNC, SPECIAL-USE,
// UNSELECT, ACL (RFC 4314 with Cyrus's rights) and QUOTA, SORT and
// SORT=DISPLAY, THREAD (ORDEREDSUBJECT, REFERENCES), ESEARCH, ESORT,
// CONTEXT=SEARCH and CONTEXT=SORT, SEARCHRES, WITHIN, STATUS=SIZE,
// APPENDLIMIT, BINARY, CATENATE, METADATA (with Cyrus's vendor entries),
// OBJECTID, SAVEDATE and NOTIFY (message, mailbox and subscription
// events), plus Cyrus's LOCALAPPEND, LOCALCREATE and LOCALDELETE, over a
// mailstore.Store, in the namespace a default Cyrus backend presents
// (internal "user.alice" is the user's INBOX, other users under "user.",
// the separator "." or "/").
//
// # Why our own command loop, and what it takes from go-imap
//
// go-imap v2 (beta.8) imapserver dispatches a fixed set of commands and
// answers anything else with BAD, so ACL, QUOTA and LOCALAPPEND cannot be
// added to it. A filter in front of it was considered and rejected: it
// would have to frame every command itself (literals included, or it
// cannot tell where the next command starts), own the whole
// not-authenticated state (imapserver advertises capabilities only from a
// built-in list, so ACL, QUOTA, ID, RIGHTS=, MULTIAPPEND and CONDSTORE
// would be missing from the greeting and from LOGIN's OK), rewrite
// LOCALAPPEND into APPEND, and mirror the selected state; two parsers over
// one stream, kept in step by guesswork. imapserver also fixes things a
// backend must control: read timeouts (35 min, not configurable), the
// command length, literal limits (a non-synchronising APPEND literal over
// the limit is not skipped, so its bytes would be read as commands), no
// MULTIAPPEND (which a Cyrus frontend uses for cross-backend COPY) and no
// CONDSTORE. Its wire codec is internal, and its FetchWriter,
// UpdateWriter and therefore MailboxTracker cannot be used without its
// Conn.
//
// So this package has its own codec (codec.go, also usable by a proxy
// that must frame commands to route them) and command loop, and reuses
// go-imap where it is a library: the protocol types (imap.SeqSet,
// imap.UIDSet, imap.SearchCriteria, imap.FetchItemBodySection, ...),
// imapserver.MatchList for LIST patterns; and its imapclient in the
// tests. Message structure (BODYSTRUCTURE, sections) is ours (mime.go,
// section.go): go-message cuts headers at 1 MiB and reads whole parts
// into memory, and ExtractBodySection numbers single-part messages
// wrongly. Sequence-number bookkeeping is ours (session.go): each
// session keeps the UIDs it has announced and diffs the store against
// them, which survives restarts and works for changes made by LMTP.
//
// # Sorting and threading
//
// SORT and THREAD read the header fields they compare (base subject, sent
// date, addresses, Message-ID and References) once per message and keep
// them in the server's keyCache by mailbox and UID: headers never change
// and UIDs are never reused, so a repeated SORT of a folder view reads
// only the message records. RETURN's PARTIAL is accepted on SEARCH and
// SORT, and SEARCH and SORT RETURN (UPDATE) are kept current
// (CONTEXT=SEARCH and CONTEXT=SORT, context.go): a sorted result keeps
// its hits with their keys, so a message joining or leaving is placed by
// binary search.
//
// # Mailbox changes and the murder
//
// CREATE, DELETE, RENAME and SETACL/DELETEACL go through a MailboxRegistry
// (the backend-pusher in a murder, NopRegistry alone): reserve, change
// locally, activate, rolling back on failure, so that while the master is
// unreachable nothing changes and the client gets NO.
package imap
