package imap

import (
	"testing"
)

// addressCases are ENVELOPE address lists for header values: RFC 5322
// appendix A, imaptest's fetch-envelope and search-addresses, and junk.
var addressCases = []struct{ in, want string }{
	{"", "NIL"},
	{"   ", "NIL"},
	{"user@domain", `((NIL NIL "user" "domain"))`},
	{"John Doe <jdoe@machine.example>", `(("John Doe" NIL "jdoe" "machine.example"))`},
	{`"Joe Q. Public" <john.q.public@example.com>`, `(("Joe Q. Public" NIL "john.q.public" "example.com"))`},
	{`Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>`,
		`(("Mary Smith" NIL "mary" "x.test")(NIL NIL "jdoe" "example.org")("Who?" NIL "one" "y.test"))`},
	{`<boss@nil.test>, "Giant; \"Big\" Box" <sysservices@example.net>`,
		`((NIL NIL "boss" "nil.test")("Giant; \"Big\" Box" NIL "sysservices" "example.net"))`},
	{`A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;`,
		`((NIL NIL "A Group" NIL)("Ed Jones" NIL "c" "a.test")(NIL NIL "joe" "where.test")("John" NIL "jdoe" "one.test")(NIL NIL NIL NIL))`},
	{`Undisclosed recipients:;`, `((NIL NIL "Undisclosed recipients" NIL)(NIL NIL NIL NIL))`},
	{`undisclosed: a@b, c@d;`, `((NIL NIL "undisclosed" NIL)(NIL NIL "a" "b")(NIL NIL "c" "d")(NIL NIL NIL NIL))`},
	// RFC 5322 A.5: comments and folding white space everywhere.
	{"Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
		`(("Pete" NIL "pete" "silly.test"))`},
	{"A Group(Some people)\r\n     :Chris Jones <c@(Chris's host.)public.example>,\r\n         joe@example.org,\r\n  John <jdoe@one.test> (my dear friend); (the end of the group)",
		`((NIL NIL "A Group" NIL)("Chris Jones" NIL "c" "public.example")(NIL NIL "joe" "example.org")("John" NIL "jdoe" "one.test")(NIL NIL NIL NIL))`},
	{"<@route:user@domain>", `((NIL "@route" "user" "domain"))`},
	{"Name <@a.test,@b.test:user@domain>", `(("Name" "@a.test,@b.test" "user" "domain"))`},
	{"user@domain (Real Name)", `(("Real Name" NIL "user" "domain"))`},
	{"user(not a name)@domain ", `((NIL NIL "user" "domain"))`},
	{"<user-from (comment)@ (comment) domain.org>", `((NIL NIL "user-from" "domain.org"))`},
	{`"john doe"@example.com`, `((NIL NIL "john doe" "example.com"))`},
	{"group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;",
		`((NIL NIL "group" NIL)(NIL NIL "g1" "d1.org")(NIL NIL "g2" "d2.org")(NIL NIL NIL NIL)(NIL NIL "group2" NIL)(NIL NIL "g3" "d3.org")(NIL NIL NIL NIL))`},
	{"group:;, group2: (foo) ;", `((NIL NIL "group" NIL)(NIL NIL NIL NIL)(NIL NIL "group2" NIL)(NIL NIL NIL NIL))`},
	{"unclosed: a@b", `((NIL NIL "unclosed" NIL)(NIL NIL "a" "b")(NIL NIL NIL NIL))`},
	{"=?utf-8?q?J=C3=B6rg?= <j@x.test>", `(("=?utf-8?q?J=C3=B6rg?=" NIL "j" "x.test"))`},
	// Missing domains: never a NIL host, which would be a group marker.
	{"user", `((NIL NIL "user" "unspecified-domain"))`},
	{"Name <user>", `(("Name" NIL "user" "unspecified-domain"))`},
	{"<>", `((NIL NIL "" "unspecified-domain"))`},
	{"[1.2.3.4]", `((NIL NIL "[1.2.3.4]" "unspecified-domain"))`},
	{"user@[10.0.0.1]", `((NIL NIL "user" "[10.0.0.1]"))`},
	// Junk: something sane, never a panic.
	{"<<<>>>", `((NIL NIL "" "unspecified-domain"))`},
	{`"unterminated <a@b>`, `((NIL NIL "unterminated <a@b>" "unspecified-domain"))`},
	{"(unterminated comment", "NIL"},
	{",,,;;;", "NIL"},
	{"a@b@c", `((NIL NIL "a" "b@c"))`},
	{"a@b junk, c@d", `((NIL NIL "a" "b")(NIL NIL "c" "d"))`},
}

func TestAddressList(t *testing.T) {
	for _, c := range addressCases {
		if got := string(appendAddressList(nil, c.in)); got != c.want {
			t.Errorf("%q:\n got %s\nwant %s", c.in, got, c.want)
		}
	}
}

func TestAddressSearch(t *testing.T) {
	for _, c := range []struct {
		value, key string
		want       bool
	}{
		{"<user-from (comment)@ (comment) domain.org>", "user-from@domain.org", true},
		{"user-from@domain.org (RealFrom)", "realfrom", true},
		{"RealFrom <user-from@domain.org>", "ealfro", true},
		{"groupname: groupuser1@domain.org;", "groupname", true},
		{"groupname: groupuser1@domain.org;", "groupuser4", false},
		{"=?iso-8859-1?q?J=F6rg?= <j@x.test>", "jörg", true},
		{"=?utf-8?q?J=C3=B6rg_Sch?= =?utf-8?q?mid?= <j@x.test>", "jörg schmid <j@x", true},
		{"<@route:user@domain>", "route:user@domain", true},
		{"a@b", "", true},
	} {
		f := field{name: "From", value: c.value}
		if got := headerContains(f, c.key); got != c.want {
			t.Errorf("%q contains %q: %v, want %v (%q)", c.value, c.key, got, c.want, addressText(parseAddressList(c.value)))
		}
	}
}
