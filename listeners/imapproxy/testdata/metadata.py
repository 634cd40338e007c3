"""METADATA through Rookery's frontend with Python's imaplib.

Usage: metadata.py IMAP_ADDR MAILBOX...
imaplib has no METADATA methods, so the commands go through its command
table raw, as a script would send them. In each mailbox: sets a private
entry and reads it back. Prints OK or raises.
"""
import imaplib
import sys

imaplib.Commands.setdefault("GETMETADATA", ("AUTH", "SELECTED"))
imaplib.Commands.setdefault("SETMETADATA", ("AUTH", "SELECTED"))

host, port = sys.argv[1].rsplit(":", 1)
im = imaplib.IMAP4(host, int(port))
im.login("alice", "alicepw")
for box in sys.argv[2:]:
    value = "set by imaplib in %s" % box
    typ, data = im._simple_command("SETMETADATA", box,
                                   '(/private/comment "%s")' % value)
    assert typ == "OK", (box, data)
    typ, data = im._simple_command("GETMETADATA", box, "/private/comment")
    assert typ == "OK", (box, data)
    typ, data = im._untagged_response(typ, data, "METADATA")
    assert data and value.encode() in data[0], (box, data)
    print("%s: %s" % (box, data[0].decode()))
im.logout()
print("OK")
