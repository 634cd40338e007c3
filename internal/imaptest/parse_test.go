package imaptest

import (
	"slices"
	"strings"
	"testing"
)

// Shapes of imaptest 9d78895's output (test-exec.c test_fail and
// tests_execute_next, imaptest.c print_timeout and print_total), taken
// from runs against a Rookery backend.
const scripted = `Error: alice[10]: Keyword used without being in FLAGS: $keyword1: * 5 FETCH (FLAGS (\Flagged $keyword1 $keyword2))
*** Test copy command 16/24 (line 28)
 - failed: Missing 1 untagged replies (0 mismatches)
 - first unexpanded: 3 recent
 - first expanded: 3 recent
 - best match: 3 EXISTS
 - Command: noop

*** Test copy command 17/24 (line 32)
 - failed: Missing 3 untagged replies (3 mismatches)
 - Command: fetch 1:3 (flags internaldate)

*** Test move command 12/13 (line 44)
 - failed: Expected tagged reply 'ok', got 'NO Cannot move a message into the mailbox it is in'
 - Command (tag 37.21): move 1 $mailbox

*** Test notify initialization failed: Connection closed
72 test groups: 3 failed, 36 skipped due to missing capabilities
base protocol: 13/460 individual commands failed
extensions: 2/30 individual commands failed
`

const stress = `Logi List Stat Sele Fetc Fet2 Copy Stor Dele Expu Appe Logo 
100%  50%  50% 100% 100% 100%  33%  50% 100% 100% 100% 100% 
                         30%   5%                      5%      
  10    3    4   10   10   10    3    5    9    9   10    0  10/ 10
Error: alice[3]: error parsing input: Missing ')'
Error: alice[7]: BODY[1] size changed 5315 -> '0'
  48   22   25   47   46   44   14   24   45   42   46    0  10/ 10 (2 stalled >3s)
 - 4 stalled for 16 secs in command: 12 UID FETCH 1:* (FLAGS)
Error: alice[12]: error parsing input: Missing ')'
Info: Second timeout triggered while trying to stop - stopping immediately
   3    3    3    3    3    3    3    3    3    3    3    3 ms/cmd avg

Totals:
Logi List Stat Sele Fetc Fet2 Copy Stor Dele Expu Appe Logo 
100%  50%  50% 100% 100% 100%  33%  50% 100% 100% 100% 100% 
                         30%   5%                      5%      
 580  290  291  575  571  566  189  288  573  570  577  570 
`

func TestParseScripted(t *testing.T) {
	r := Parse([]byte(scripted))
	if !r.Summary || r.Groups != 72 || r.Failed != 3 || r.Skipped != 36 {
		t.Errorf("summary: %+v", r)
	}
	if r.BaseFailed != 13 || r.BaseCommands != 460 || r.ExtFailed != 2 || r.ExtCommands != 30 {
		t.Errorf("commands: %+v", r)
	}
	if want := []string{"copy", "move", "notify"}; !slices.Equal(r.FailedGroups, want) {
		t.Errorf("failed groups %v, want %v", r.FailedGroups, want)
	}
	if len(r.Failures) != 4 || !strings.HasSuffix(r.Failures[2], " - Command (tag 37.21): move 1 $mailbox") {
		t.Errorf("failures: %q", r.Failures)
	}
	if len(r.Errors) != 1 || r.Totals != nil || len(r.Stalls) != 0 {
		t.Errorf("errors %q totals %v stalls %q", r.Errors, r.Totals, r.Stalls)
	}
}

func TestParseStress(t *testing.T) {
	r := Parse([]byte(stress))
	if r.Summary {
		t.Error("a stress run has no scripted summary")
	}
	if len(r.Ops) != 12 || r.Totals["Fetc"] != 571 || r.Totals["Logo"] != 570 || r.TotalOps() != 5640 {
		t.Errorf("totals %v %v (sum %d)", r.Ops, r.Totals, r.TotalOps())
	}
	if len(r.Errors) != 3 || len(r.Stalls) != 2 {
		t.Errorf("errors %q stalls %q", r.Errors, r.Stalls)
	}
	classes := r.ErrorClasses()
	if len(classes) != 2 || classes[0] != (Count{"error parsing input: Missing ')'", 2}) ||
		classes[1].What != "BODY[N] size changed N -> 'N'" {
		t.Errorf("classes %+v", classes)
	}
	rep := r.Report(10)
	for _, want := range []string{"Fetc=571", "5640 operations, 564 ops/s", "3 Error lines", "2 stalled clients (2 stall reports)"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
}

// A run killed half-way has neither summary nor totals; a table cut off
// after its header gives no totals rather than wrong ones.
func TestParseIncomplete(t *testing.T) {
	for _, out := range []string{"", stress[:200], strings.SplitAfter(stress, "Totals:\n")[0] + "Logi List\n100%  50%\n"} {
		r := Parse([]byte(out))
		if r.Summary || r.Totals != nil {
			t.Errorf("%q: summary %v totals %v", out, r.Summary, r.Totals)
		}
		if !strings.Contains(r.Report(1), "did not finish") {
			t.Errorf("%q: report %q", out, r.Report(1))
		}
	}
}

func TestConfigArgs(t *testing.T) {
	a, err := Config{Addr: "127.0.0.1:1143", User: "alice", Pass: "pw", Box: "INBOX.imaptest", Test: "tests"}.args()
	if err != nil || !slices.Equal(a, []string{"host=127.0.0.1", "port=1143", "user=alice", "pass=pw", "box=INBOX.imaptest", "test=tests"}) {
		t.Errorf("scripted args %q %v", a, err)
	}
	a, err = Config{Addr: "127.0.0.1:1143", User: "alice", Pass: "pw", Mbox: "/m", Clients: 10, Secs: 30}.args()
	if err != nil || !slices.Equal(a[4:], []string{"mbox=/m", "clients=10", "secs=30"}) {
		t.Errorf("stress args %q %v", a, err)
	}
	a, err = Config{Addr: "127.0.0.1:1143", Mbox: "/m", Clients: 10, Secs: 30, QResync: true}.args()
	if err != nil || a[len(a)-1] != "qresync" {
		t.Errorf("stress args with QRESYNC %q %v", a, err)
	}
	if _, err := (Config{Addr: "127.0.0.1:1143", Mbox: "/m"}).args(); err == nil {
		t.Error("a stress run without clients and secs was accepted")
	}
	if _, err := (Config{Addr: "nohost"}).args(); err == nil {
		t.Error("an address without a port was accepted")
	}
}
