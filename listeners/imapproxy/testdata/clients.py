"""Mail clients nobody here wrote, through Rookery's frontend.

Usage: clients.py IMAP_ADDR POP3_ADDR LMTP_ADDR
Syncs alice's mailbox tree over IMAP (imaplib), delivers over LMTP
(smtplib.LMTP) and reads over POP3 (poplib). Prints OK or raises.
"""
import email
import imaplib
import poplib
import re
import smtplib
import sys


def hostport(a):
    h, p = a.rsplit(":", 1)
    return h, int(p)


imap_addr, pop3_addr, lmtp_addr = map(hostport, sys.argv[1:4])

# LMTP: one recipient per transaction (smtplib reads one reply after DATA).
lm = smtplib.LMTP(*lmtp_addr)
lm.login("admin", "secret")
refused = lm.sendmail("py@example.com", ["alice@example.com"],
                      b"Subject: from python\r\n\r\nvia smtplib.LMTP\r\n")
assert refused == {}, refused
lm.quit()

# IMAP: a full walk of the tree, as a sync tool does.
im = imaplib.IMAP4(*imap_addr)
im.login("alice", "alicepw")
typ, _ = im.create("INBOX.py")
assert typ == "OK"
typ, _ = im.append("INBOX.py", "(\\Seen)", None, b"Subject: appended\r\n\r\nby imaplib\r\n")
assert typ == "OK"
typ, boxes = im.list()
assert typ == "OK", boxes
names = []
for line in boxes:
    m = re.match(rb'\((.*?)\) "(.)" (.*)', line)
    flags, name = m.group(1), m.group(3).strip(b'"').decode()
    if b"\\Noselect" not in flags:
        names.append(name)
assert "INBOX" in names and "INBOX.py" in names, names
synced = {}
for name in names:
    typ, data = im.select('"%s"' % name, readonly=True)
    assert typ == "OK", (name, data)
    count = int(data[0])
    msgs = []
    if count:
        typ, data = im.fetch("1:*", "(UID FLAGS RFC822)")
        assert typ == "OK", data
        for part in data:
            if isinstance(part, tuple):
                msgs.append(email.message_from_bytes(part[1])["Subject"])
    synced[name] = msgs
im.logout()
assert "from python" in synced["INBOX"], synced
assert synced["INBOX.py"] == ["appended"], synced

# POP3: the same INBOX through the POP3 frontend.
po = poplib.POP3(*pop3_addr)
po.user("alice")
po.pass_("alicepw")
count, _ = po.stat()
assert count == len(synced["INBOX"]), (count, synced["INBOX"])
_, lines, _ = po.retr(count)
assert b"Subject: from python" in lines, lines
po.quit()
print("OK", sorted(synced))
