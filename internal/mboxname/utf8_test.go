package mboxname

import "testing"

func TestUTF8(t *testing.T) {
	for _, c := range []struct{ utf7, utf8 string }{
		{"INBOX", "INBOX"},
		{"Entw&APw-rfe", "Entwürfe"},
		{"&ZeVnLIqe-", "日本語"},
		{"R&AOk-sum&AOk- &- co", "Résumé & co"},
		{"&2DXcAQ-", "𝐁"},
		{"a.&BB8EQAQ4BDIENQRC-.b", "a.Привет.b"},
	} {
		if got, ok := ToUTF8(c.utf7); !ok || got != c.utf8 {
			t.Errorf("ToUTF8(%q) = %q, %v; want %q", c.utf7, got, ok, c.utf8)
		}
		if got, ok := FromUTF8(c.utf8); !ok || got != c.utf7 {
			t.Errorf("FromUTF8(%q) = %q, %v; want %q", c.utf8, got, ok, c.utf7)
		}
		if err := Check(c.utf7); err != nil {
			t.Errorf("Check(%q): %v", c.utf7, err)
		}
	}
	if _, ok := ToUTF8("bad&AGE-"); ok {
		t.Error("ToUTF8 took encoded US-ASCII")
	}
	if _, ok := FromUTF8("bad\xff"); ok {
		t.Error("FromUTF8 took invalid UTF-8")
	}
}
