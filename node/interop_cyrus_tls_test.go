package node

import (
	"context"
	"strings"
	"testing"

	"github.com/rookery/rookery/internal/cyrustest"
	"github.com/rookery/rookery/listeners/mupdate"
)

// TestCyrusBackendPushesOverTLS: a Rookery master that offers PLAIN only
// under TLS (allowplaintext: no, loopback not counted as secure), as a
// Cyrus master without allowplaintext does; a real Cyrus backend takes up
// its STARTTLS and pushes its mailboxes.
func TestCyrusBackendPushesOverTLS(t *testing.T) {
	cyrustest.Require(t)
	n := cyrusMaster(t, t.TempDir(), func(c *Config) { c.AllowPlaintext, c.PlaintextLoopback = false, false })

	c := dialLines(t, n.MUPDATEAddr())
	if g := c.expect("* AUTH"); strings.Contains(g, "PLAIN") {
		t.Errorf("PLAIN offered in the clear: %q", g)
	}
	c.expect("* STARTTLS")

	be := cyrustest.Start(t, cyrustest.RoleBackend, cyrustest.Options{
		Master:   n.MUPDATEAddr(),
		IMAPPort: cyrustest.FreePort(t),
	})
	imap := cyrustest.DialIMAP(t, be.IMAPAddr(), cyrustest.AdminUser, cyrustest.AdminPass)
	if _, _, err := imap.Cmd("CREATE user.alice"); err != nil {
		t.Fatal(err)
	}
	waitEntry(t, n, "user.alice", activeAt(be.ServerName+"!default"))

	// A Rookery client without TLS is refused PLAIN.
	_, err := mupdate.Dial(context.Background(), n.MUPDATEAddr(), mupdate.ClientConfig{Username: cyrustest.MupdateUser, Password: cyrustest.MupdatePass})
	if err == nil {
		t.Error("PLAIN accepted in the clear")
	}
}
