"""BINARY through Rookery's frontend with Python's imaplib.

Usage: binary.py IMAP_ADDR MAILBOX...
In each mailbox: appends a message with a base64 attachment holding every
byte value, then fetches the attachment decoded (BINARY.PEEK) and its
decoded size (BINARY.SIZE), and checks both. Prints OK or raises.
"""
import base64
import imaplib
import re
import sys

host, port = sys.argv[1].rsplit(":", 1)
attachment = bytes(range(256)) * 40
encoded = base64.encodebytes(attachment).replace(b"\n", b"\r\n")
msg = (b"Subject: from imaplib\r\nMIME-Version: 1.0\r\n"
       b"Content-Type: multipart/mixed; boundary=xx\r\n\r\n"
       b"--xx\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
       b"--xx\r\nContent-Type: application/octet-stream\r\n"
       b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded +
       b"--xx--\r\n")

im = imaplib.IMAP4(host, int(port))
im.login("alice", "alicepw")
typ, caps = im.capability()
assert b" BINARY" in caps[0], caps
for box in sys.argv[2:]:
    typ, data = im.append(box, None, None, msg)
    assert typ == "OK", (box, data)
    typ, data = im.select(box)
    assert typ == "OK", (box, data)
    n = data[0].decode()
    typ, data = im.fetch(n, "(BINARY.SIZE[2])")
    assert typ == "OK", (box, data)
    size = int(re.search(rb"BINARY\.SIZE\[2\] (\d+)", data[0]).group(1))
    assert size == len(attachment), (box, size)
    typ, data = im.fetch(n, "(BINARY.PEEK[2])")
    assert typ == "OK", (box, data)
    # imaplib reads the literal8 as any literal: (prefix, bytes).
    assert data[0][0].endswith(b"~{%d}" % len(attachment)), (box, data[0][0])
    assert data[0][1] == attachment, box
    print("%s: BINARY[2] %d bytes decoded" % (box, len(attachment)))
im.logout()
print("OK")
