package rookerytest_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/rookery/rookery/internal/imaptest"
	"github.com/rookery/rookery/internal/rookerytest"
)

// TestImaptestQresync runs imaptest's stress with QRESYNC on (its clients
// ENABLE QRESYNC, are told expunges as VANISHED and reselect with SELECT
// (QRESYNC ...), checking what they are told against what they know)
// against a Rookery backend and a Rookery frontend in front of two
// Rookery backends, 10 clients each. Any "Error:" line fails it.
func TestImaptestQresync(t *testing.T) {
	imaptest.Require(t)
	mbox := filepath.Join(t.TempDir(), "stress.mbox")
	if err := imaptest.GenMbox(t.Context(), mbox, 0); err != nil {
		t.Fatal(err)
	}
	const secs = 20
	for _, kind := range []rookerytest.Kind{rookerytest.Backend, rookerytest.Murder} {
		t.Run(kind.String(), func(t *testing.T) {
			top := boot(t, kind)
			r, err := imaptest.Run(t.Context(), imaptest.Config{
				Addr: top.IMAPAddr, User: alice.Name, Pass: alice.Pass,
				Mbox: mbox, Clients: 10, Secs: secs, QResync: true,
				Timeout: (secs + 60) * time.Second,
			})
			check(t, r, err, secs)
			if r.Totals == nil || r.TotalOps() == 0 {
				t.Error("no operation was done")
			}
		})
	}
}
