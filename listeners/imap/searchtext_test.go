package imap

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestSearchDecodedText: SEARCH BODY and TEXT see the text a reader
// sees: quoted-printable and base64 undone, charsets converted, encoded
// words decoded, case folded beyond ASCII; a base64 attachment is not
// text, and encoded bytes no longer match.
func TestSearchDecodedText(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice")
	c := e.raw()
	c.cmd("1", "LOGIN alice alicepw", "OK")
	latin1 := base64.StdEncoding.EncodeToString([]byte("Gr\xfc\xdfe aus K\xf6ln"))
	secret := base64.StdEncoding.EncodeToString([]byte("secretword in a zip"))
	msgs := []string{
		// 1: quoted-printable UTF-8
		"Subject: qp\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n" +
			"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 cr=C3=\r\n=A8me\r\n",
		// 2: base64 ISO-8859-1 in a multipart, with a base64 attachment
		"Subject: b64\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n" +
			"preamble needle\r\n--x\r\nContent-Type: text/plain; charset=ISO-8859-1\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			latin1 + "\r\n--x\r\nContent-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			secret + "\r\n--x--\r\n",
		// 3: an encoded-word subject, and a forwarded message with one
		"Subject: =?iso-8859-1?q?Caf=E9_noir?=\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=y\r\n\r\n" +
			"--y\r\nContent-Type: text/plain\r\n\r\nsee below\r\n--y\r\nContent-Type: message/rfc822\r\n\r\n" +
			"Subject: =?utf-8?b?w4ljbGFpcg==?=\r\n\r\ninner text\r\n--y--\r\n",
	}
	for _, m := range msgs {
		c.cmd("a", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(m), m), "OK")
	}
	c.cmd("s", "SELECT INBOX", "OK")
	for _, tc := range []struct {
		key  string
		want []string
	}{
		{"BODY café", []string{"1"}},
		{"BODY CRÈME", []string{"1"}},
		{"BODY C3=A9", nil},
		{"BODY KÖLN", []string{"2"}},
		{"BODY grüße", []string{"2"}},
		{"BODY secretword", nil},
		{"BODY preamble", nil},
		{"TEXT CAFÉ", []string{"1", "3"}},
		{"BODY café", []string{"1"}},
		{"BODY éclair", []string{"3"}},
		{"TEXT ÉCLAIR", []string{"3"}},
		{"BODY noir", nil},
		{"TEXT noir", []string{"3"}},
		{"BODY inner", []string{"3"}},
		{"SUBJECT CAFÉ", []string{"3"}},
	} {
		key, arg, _ := strings.Cut(tc.key, " ")
		got := c.cmd("t", fmt.Sprintf("SEARCH CHARSET UTF-8 %s {%d+}\r\n%s", key, len(arg), arg), "OK")
		nums := strings.Fields(strings.TrimPrefix(got[0], "* SEARCH"))
		if !slices.Equal(nums, tc.want) && !(len(nums) == 0 && len(tc.want) == 0) {
			t.Errorf("SEARCH %s: %v, want %v", tc.key, nums, tc.want)
		}
	}
}
