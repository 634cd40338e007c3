package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rookery/rookery/node"
)

// TestMboxlistCommand: "node mboxlist -w" reports how a running backend's
// mailboxes and its master's list differ (one made by LOCALCREATE, one
// removed by LOCALDELETE, neither told to the master) and exits 1;
// "node mboxlist" makes the master match; then -w finds nothing.
func TestMboxlistCommand(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(users, []byte("admin:{PLAIN}secret\nmupdate:{PLAIN}mupdatepw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := node.DefaultConfig()
	cfg.ServerName, cfg.DataDir = "be1.test", t.TempDir()
	cfg.Roles = []node.Role{node.RoleMaster, node.RoleBackend}
	cfg.MUPDATEListen, cfg.IMAPListen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.POP3Listen, cfg.LMTPListen = "", ""
	cfg.UsersFile, cfg.Admins = users, []string{"admin", "mupdate"}
	cfg.MUPDATEAuthname, cfg.MUPDATEPassword = "mupdate", "mupdatepw"
	cfg.FailedLoginPause = 0
	n, err := node.Start(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	conn, err := net.Dial("tcp", n.IMAPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	cmd := func(line string) {
		t.Helper()
		if _, err := io.WriteString(conn, "t "+line+"\r\n"); err != nil {
			t.Fatal(err)
		}
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(l, "t ") {
				if !strings.HasPrefix(l, "t OK") {
					t.Fatalf("%s: %s", line, l)
				}
				return
			}
		}
	}
	if _, err := br.ReadString('\n'); err != nil { // greeting
		t.Fatal(err)
	}
	for _, line := range []string{"LOGIN admin secret", "CREATE shared.a", "CREATE shared.b",
		"LOCALDELETE shared.b", "LOCALCREATE shared.c"} {
		cmd(line)
	}
	run := func(args ...string) (int, string) {
		var out, errs bytes.Buffer
		code := mboxlist(&out, &errs, append(args, "--admin", n.AdminAddr()))
		return code, out.String() + errs.String()
	}
	code, out := run("-w")
	if code != 1 || !strings.Contains(out, "missing on the master: shared.c") ||
		!strings.Contains(out, "on the master, not here: shared.b") || !strings.Contains(out, "nothing changed") {
		t.Errorf("mboxlist -w: exit %d:\n%s", code, out)
	}
	if _, found, _ := n.Store().Get("shared.c"); found {
		t.Error("-w changed the master")
	}
	if code, out := run(); code != 0 || !strings.Contains(out, "repaired: 1 activated, 1 deleted") {
		t.Errorf("mboxlist: exit %d:\n%s", code, out)
	}
	if _, found, _ := n.Store().Get("shared.c"); !found {
		t.Error("shared.c not on the master after the repair")
	}
	if _, found, _ := n.Store().Get("shared.b"); found {
		t.Error("shared.b still on the master after the repair")
	}
	if code, out := run("-w"); code != 0 || !strings.Contains(out, "matches") {
		t.Errorf("mboxlist -w after the repair: exit %d:\n%s", code, out)
	}
}
