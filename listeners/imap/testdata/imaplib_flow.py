"""Drives a Rookery backend with Python's imaplib (a client no one here
wrote). Usage: imaplib_flow.py HOST PORT. Exit status 0 means every check
passed; failures are printed."""
import email
import imaplib
import socket
import sys
import time

host, port = sys.argv[1], int(sys.argv[2])


def ok(resp, what):
    typ, data = resp
    if typ != "OK":
        raise SystemExit(f"{what}: {typ} {data}")
    return data


M = imaplib.IMAP4(host, port)
ok(M.login("alice", "alicepw"), "login")
caps = ok(M.capability(), "capability")[0].decode().split()
for c in ("IDLE", "UIDPLUS", "MOVE", "ACL", "QUOTA", "NAMESPACE"):
    if c not in caps:
        raise SystemExit(f"capability {c} missing from {caps}")
ok(M.create("INBOX.py"), "create")
ok(M.create("INBOX.py.dest"), "create child")
msg = (b"From: Py <py@example.com>\r\nTo: alice@example.com\r\nSubject: from python\r\n"
       b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b1\r\n\r\n"
       b"--b1\r\nContent-Type: text/plain\r\n\r\nplain words\r\n"
       b"--b1\r\nContent-Type: text/html\r\n\r\n<b>html words</b>\r\n--b1--\r\n")
for i in range(3):
    typ, data = M.append("INBOX.py", "(\\Flagged)" if i == 0 else None,
                         imaplib.Time2Internaldate(time.time()), msg)
    if typ != "OK" or b"APPENDUID" not in data[0]:
        raise SystemExit(f"append: {typ} {data}")
data = ok(M.select("INBOX.py"), "select")
if data != [b"3"]:
    raise SystemExit(f"select: {data}")
data = ok(M.fetch("1", "(FLAGS RFC822.HEADER)"), "fetch header")
parsed = email.message_from_bytes(data[0][1])
if parsed["Subject"] != "from python" or b"\\Flagged" not in data[0][0]:
    raise SystemExit(f"fetch header: {data}")
data = ok(M.fetch("2", "(BODY.PEEK[1] BODY.PEEK[2] BODYSTRUCTURE)"), "fetch parts")
if data[0][1] != b"plain words" or data[1][1] != b"<b>html words</b>":
    raise SystemExit(f"fetch parts: {data}")
if b'"ALTERNATIVE"' not in data[2] and b"ALTERNATIVE" not in data[-1]:
    raise SystemExit(f"bodystructure: {data}")
data = ok(M.fetch("3", "(RFC822)"), "fetch whole")
if data[0][1] != msg:
    raise SystemExit("whole message differs")
ok(M.store("2", "+FLAGS", "(\\Answered $Py)"), "store")
data = ok(M.search(None, "KEYWORD", "$Py"), "search keyword")
if data != [b"2"]:
    raise SystemExit(f"search keyword: {data}")
data = ok(M.search(None, "UNSEEN"), "search unseen")
if data != [b"1 2"]:
    raise SystemExit(f"search unseen: {data}")
data = ok(M.search(None, "TEXT", '"html words"'), "search text")
if data != [b"1 2 3"]:
    raise SystemExit(f"search text: {data}")
typ, data = M.copy("1", "INBOX.py.dest")
if typ != "OK" or b"COPYUID" not in data[0]:
    raise SystemExit(f"copy: {typ} {data}")
typ, data = M.uid("MOVE", "3", "INBOX.py.dest")
if typ != "OK":
    raise SystemExit(f"move: {typ} {data}")
ok(M.store("1", "+FLAGS", "(\\Deleted)"), "store deleted")
typ, data = M.expunge()
if typ != "OK" or data[-1] != b"1":  # earlier: the MOVE's EXPUNGE 3
    raise SystemExit(f"expunge: {typ} {data}")
data = ok(M.status("INBOX.py.dest", "(MESSAGES UIDNEXT)"), "status")
if b"MESSAGES 2" not in data[0] or b"UIDNEXT 3" not in data[0]:
    raise SystemExit(f"status: {data}")
data = ok(M.getacl("INBOX.py"), "getacl")
if b"alice lrswipkxtecdan" not in data[0]:
    raise SystemExit(f"getacl: {data}")
ok(M.setacl("INBOX.py", "bob", "lr"), "setacl")
data = ok(M.myrights("INBOX.py"), "myrights")
typ, data = M.getquotaroot("INBOX")
if typ != "OK":
    raise SystemExit(f"getquotaroot: {typ} {data}")
data = ok(M.list('""', "INBOX.py*"), "list")
if len(data) != 2:
    raise SystemExit(f"list: {data}")
ok(M.namespace(), "namespace")

# IDLE by hand (imaplib grows idle() only in 3.14): the Go test delivers a
# message once it sees the marker line and the continuation.
M.select("INBOX")
tag = M._new_tag()
M.send(tag + b" IDLE\r\n")
line = M.readline()
if not line.startswith(b"+"):
    raise SystemExit(f"idle: {line}")
print("IDLING", flush=True)
M.sock.settimeout(10)
line = M.readline()
if not line.startswith(b"* 1 EXISTS"):
    raise SystemExit(f"idle update: {line}")
line = M.readline()
if not line.startswith(b"* 1 RECENT"):
    raise SystemExit(f"idle recent: {line}")
M.send(b"DONE\r\n")
line = M.readline()
if not line.startswith(tag + b" OK"):
    raise SystemExit(f"idle end: {line}")
M.logout()  # returns BYE, as imaplib reports a BYE-then-OK logout
print("PASS")
