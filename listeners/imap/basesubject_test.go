package imap

import "testing"

// TestBaseSubject follows RFC 5256 section 2.1's steps, one case or more
// for each, with subjects from imaptest's sort-subject mailbox.
func TestBaseSubject(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		refwd    bool
	}{
		{"", "", false},
		{"a", "a", false},
		// (1) encoded words decoded, white space runs made one space
		{"=?iso-8859-1?q?_?=", "", false},
		{"=?us-ascii?b?UmU6IGM=?=", "c", true},
		{"Re: =?utf-8?q?b?=", "b", true},
		{"a \t\r\n  b", "a b", false},
		// (2) trailing "(fwd)" and white space
		{"b (fWd)  (fwd)", "b", true},
		{"b (a)", "b (a)", false},
		// (3) leaders: Re:, Fw:, Fwd:, blobs before them, "Re[2]:"
		{"[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)", "b", true},
		{"RE: C", "C", true},
		{"Re [2]: x", "x", true},
		{"Ad: Re: Ad: Re: Ad: x", "Ad: Re: Ad: Re: Ad: x", false},
		{"Re:Re:Re: x", "x", true},
		{"Reply: x", "Reply: x", false},
		// (4) a blob goes only if something is left after it
		{"[xyz]", "[xyz]", false},
		{"[xyz] a", "a", false},
		{"[a][b] c", "c", false},
		// (6) "[fwd: ...]" unwrapped, then again from (2)
		{"Re: [FWD: c]", "c", true},
		{"re: [fwd: [fwd: re: [fwd: babylon]]]", "babylon", true},
		{"[fwd: x (fwd)]", "x", true},
	} {
		got, refwd := baseSubject(tc.in)
		if got != tc.want || refwd != tc.refwd {
			t.Errorf("baseSubject(%q) = %q, %v; want %q, %v", tc.in, got, refwd, tc.want, tc.refwd)
		}
	}
}

func TestCasemap(t *testing.T) {
	// Title case, not lower case: "[" sorts after letters folded so, as
	// RFC 5256 servers (Cyrus, Dovecot) order "C" < "[xyz]" < "_".
	if !(casemap("c") < casemap("[xyz]") && casemap("[xyz]") < casemap("_")) {
		t.Error("casemap order of c, [xyz], _ is wrong")
	}
	if casemap("Straße élan") != casemap("STRAßE ÉLAN") {
		t.Errorf("casemap does not fold non-ASCII letters: %q", casemap("Straße élan"))
	}
}

func FuzzBaseSubject(f *testing.F) {
	for _, s := range []string{"[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)", "re: [fwd: [fwd: re: [fwd: babylon]]]", "[", "[fwd:]", "Re [", "=?utf-8?q?=FF?="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, _ := baseSubject(s)
		if again, _ := baseSubject(b); again != b {
			t.Errorf("baseSubject not idempotent: %q -> %q -> %q", s, b, again)
		}
	})
}
