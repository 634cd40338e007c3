package rookerytest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rookery/rookery/internal/imaptest"
	"github.com/rookery/rookery/internal/rookerytest"
)

// TestImaptestList runs imaptest's groups of LIST, LIST-EXTENDED
// (listext) and LSUB (subscribe) against a backend and through a
// frontend: each must run (a group whose capability is not announced is
// skipped, which fails here) and pass.
func TestImaptestList(t *testing.T) {
	imaptest.Require(t)
	for _, kind := range []rookerytest.Kind{rookerytest.Backend, rookerytest.Murder} {
		for _, group := range []string{"list", "listext", "subscribe"} {
			t.Run(kind.String()+"/"+group, func(t *testing.T) {
				top := boot(t, kind)
				r, err := imaptest.Run(t.Context(), imaptest.Config{
					Addr: top.IMAPAddr, User: alice.Name, Pass: alice.Pass,
					Box: "INBOX.imaptest", Test: "tests/" + group, Timeout: time.Minute,
				})
				check(t, r, err, 0)
				if r.Failed > 0 || len(r.FailedGroups) > 0 || r.Skipped > 0 {
					t.Errorf("%d failed, %d skipped: %s\n%s", r.Failed, r.Skipped, strings.Join(r.FailedGroups, " "), strings.Join(r.Failures, "\n\n"))
				}
			})
		}
	}
}
