package imapproxy

import (
	"bytes"

	"github.com/rookery/rookery/internal/mboxname"
)

// cmdMetadata routes GETMETADATA and SETMETADATA (RFC 5464). A mailbox's
// entries live on its backend, which answers for them (Rookery and Cyrus
// 3.6 backends both have METADATA). The server's entries ("") are kept
// by the user's INBOX backend: a murder has no one server, and the
// entries a user sets on "the server" belong with the rest of the user's
// data, as with Cyrus, whose frontends keep them in a local database
// that other frontends do not see. A user without an INBOX has no
// server entries to read or set.
func (s *session) cmdMetadata(c *command) error {
	var opts string
	if c.name == "GETMETADATA" && bytes.HasPrefix(c.line, []byte(" (")) {
		end := bytes.IndexByte(c.line, ')')
		if end < 0 {
			return s.argError(c, errSyntax)
		}
		opts = " " + string(c.line[1:end+1])
		c.line = c.line[end+1:]
	}
	if err := c.sp(); err != nil {
		return s.argError(c, err)
	}
	name, err := c.astring()
	if err != nil {
		return s.argError(c, err)
	}
	target := name
	if name == "" {
		target = "INBOX"
	} else if mboxname.Check(name) != nil {
		return s.argError(c, errBadName)
	}
	return s.routeTo(c, s.internal(target), c.tag+" "+c.name+opts+" "+quote(name), routeOpts{})
}
