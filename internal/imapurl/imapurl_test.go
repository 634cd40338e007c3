package imapurl

import "testing"

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want URL
		bad  bool
	}{
		{in: "/INBOX/;UID=20", want: URL{Mailbox: "INBOX", UID: 20}},
		{in: "/INBOX;UIDVALIDITY=785799047/;UID=113330/;SECTION=1.5.9",
			want: URL{Mailbox: "INBOX", UIDValidity: 785799047, UID: 113330, Section: "1.5.9"}},
		{in: "imap://joe@example.com/INBOX.Sent%20Items/;uid=3/;section=HEADER.FIELDS%20(SUBJECT)/;partial=0.1024",
			want: URL{Mailbox: "INBOX.Sent Items", UID: 3, Section: "HEADER.FIELDS (SUBJECT)", Partial: Partial{true, 0, 1024}}},
		{in: "/a/;UID=1/;PARTIAL=7", want: URL{Mailbox: "a", UID: 1, Partial: Partial{true, 7, -1}}},
		{in: "INBOX/;UID=1", bad: true},
		{in: "/INBOX", bad: true},
		{in: "/INBOX/;UID=0", bad: true},
		{in: "/INBOX;UIDVALIDITY=x/;UID=1", bad: true},
		{in: "/INBOX/;UID=1/;URLAUTH=anonymous:internal:00", bad: true},
		{in: "/INBOX/;UID=1/;SECTION=1]", bad: true},
		{in: "/%ZZ/;UID=1", bad: true},
	} {
		got, err := Parse(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("Parse(%q) = %+v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

// FuzzParse: any text parses or is refused, never panics, and what
// parses names a message.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"/INBOX/;UID=20",
		"/INBOX;UIDVALIDITY=785799047/;UID=113330/;SECTION=1.5.9",
		"imap://joe@example.com/INBOX.Sent%20Items/;uid=3/;section=HEADER.FIELDS%20(SUBJECT)/;partial=0.1024",
		"/a/;UID=1/;PARTIAL=7",
		"/%ZZ/;UID=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := Parse(s)
		if err == nil && (u.UID == 0 || u.Mailbox == "") {
			t.Fatalf("Parse(%q) = %+v without an error", s, u)
		}
	})
}
