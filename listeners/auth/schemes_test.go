package auth

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/rookery/rookery/internal/cyrustest"
)

// Written by `doveadm pw -s SCHEME -p 'pässword 1'` (Dovecot 2.3).
var doveadmVectors = []string{
	"{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$/R+JZMxpGcDI3HeHpJT5bw$skyL9vsJ1koievxw0cZ/E8kh3UlWa00iXtOroPUAH6Y",
	"{BLF-CRYPT}$2y$05$ynOMn8UPMLQjNI1pYelzGetSVp8b7MLzwGdM1DfM4sTQGF8CUWZ0i",
	"{SHA512-CRYPT}$6$hocxpU1sQHbn7ktv$JX4lmHvQIOUgE7ppW1/1GmzRUhQ1nOxt99QG9eBIqjIdtMZ6nxy/jwrT0PyAt0hOhgU/7mhBpz3SC/CVxDQoh0",
	"{SHA256-CRYPT}$5$XyZ1wVftM/Ae8riw$fYgzj7s9oyYAVbURUIV48Yv6lIo/XhzdAbumewcvbLA",
	"{SSHA512}5FFscorR6eORK6BQfRtq8R7XKifpyocPo0i/njefh0SYXoY1tuYmtDEm32mYXrtDon+oPGg+Hw+4mBtF4ftj6NgJfic=",
	"{SHA256.HEX}7fb44446e5a139b3b7a07722161b693429c6843d053412fb0b21370242b8bdb0",
	"{SSHA}+1x0y4NXdDhSocPH2rMYdtDg8M5a5S1S",
	"{CRYPT}$2y$05$IbTPW7rSLWuZVheYP5rnaur8O/md507JqqNvXMeQLSvI.S/GUC7Lu",
}

func TestDoveadmSchemes(t *testing.T) {
	for _, v := range doveadmVectors {
		s, err := parseSecret(v)
		if err != nil {
			t.Errorf("%s: %v", v, err)
			continue
		}
		if !s.matches("pässword 1") {
			t.Errorf("%s: the right password is refused", v)
		}
		for _, wrong := range []string{"pässword 2", "", "pässword 1 ", "password 1"} {
			if s.matches(wrong) {
				t.Errorf("%s: %q accepted", v, wrong)
			}
		}
	}
}

// The vectors of Drepper's SHA-crypt specification.
func TestShaCryptVectors(t *testing.T) {
	cases := []struct{ setting, pw, want string }{
		{"$5$saltstring", "Hello world!", "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"},
		{"$5$rounds=10000$saltstringsaltstring", "Hello world!", "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA"},
		{"$5$rounds=1400$anotherlongsaltstring", "a very much longer text to encrypt.  This one even stretches over morethan one line.", "$5$rounds=1400$anotherlongsalts$Rx.j8H.h8HjEDGomFU8bDkXm3XIUnzyxf12oP84Bnq1"},
		{"$5$rounds=10$roundstoolow", "the minimum number is still observed", "$5$rounds=1000$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC"},
		{"$6$saltstring", "Hello world!", "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"},
		{"$6$rounds=10000$saltstringsaltstring", "Hello world!", "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."},
		{"$6$rounds=10$roundstoolow", "the minimum number is still observed", "$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX."},
	}
	for _, c := range cases {
		got, err := shaCrypt(c.pw, c.setting)
		if err != nil || got != c.want {
			t.Errorf("shaCrypt(%q, %q) = %q, %v; want %q", c.pw, c.setting, got, err, c.want)
		}
	}
}

// A SHA-crypt hash made by another implementation (OpenSSL's) verifies.
func TestShaCryptAgainstOpenSSL(t *testing.T) {
	cyrustest.RequireTool(t, "openssl", "openssl")
	for _, alg := range []string{"-5", "-6"} {
		out, err := exec.Command("openssl", "passwd", alg, "pw with spaces ü").Output()
		if err != nil {
			t.Fatal(err)
		}
		h := strings.TrimSpace(string(out))
		if got, err := shaCrypt("pw with spaces ü", h); err != nil || got != h {
			t.Errorf("openssl %s: %q, ours %q %v", alg, h, got, err)
		}
	}
}

func TestMakeSecret(t *testing.T) {
	for _, scheme := range []string{"ARGON2ID", "BLF-CRYPT", "SHA512-CRYPT", "SHA256-CRYPT", "bcrypt"} {
		v, err := MakeSecret(scheme, "s3cret")
		if err != nil {
			t.Fatalf("%s: %v", scheme, err)
		}
		s, err := parseSecret(v)
		if err != nil {
			t.Fatalf("%s: %q does not parse: %v", scheme, v, err)
		}
		if !s.matches("s3cret") || s.matches("s3cre") {
			t.Errorf("%s: %q does not verify as it should", scheme, v)
		}
		v2, _ := MakeSecret(scheme, "s3cret")
		if v2 == v {
			t.Errorf("%s: two hashes of one password are equal (no salt?)", scheme)
		}
	}
	if _, err := MakeSecret("MD5", "x"); err == nil {
		t.Error("MakeSecret(MD5) succeeded")
	}
	for scheme, prefix := range map[string]string{"ARGON2ID": "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$", "BLF-CRYPT": "{BLF-CRYPT}$2y$10$", "SHA512-CRYPT": "{SHA512-CRYPT}$6$"} {
		if v, _ := MakeSecret(scheme, "x"); !strings.HasPrefix(v, prefix) {
			t.Errorf("%s: %q lacks Dovecot's prefix %q", scheme, v, prefix)
		}
	}
}

func TestBadSecrets(t *testing.T) {
	for _, v := range []string{
		"{SHA512-CRYPT}$5$abc$def", "{SHA512-CRYPT}$2y$05$ynOMn8UPMLQjNI1pYelzGetSVp8b7MLzwGdM1DfM4sTQGF8CUWZ0i",
		"{ARGON2ID}$argon2i$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaGhhc2g", "{ARGON2ID}$argon2id$v=16$m=65536,t=3,p=1$c2FsdA$aGFzaGhhc2g",
		"{ARGON2ID}$argon2id$v=19$m=65536,t=0,p=1$c2FsdA$aGFzaGhhc2g", "{ARGON2ID}garbage",
		"{SHA256}short", "{SSHA}AAAA", "{SHA256.HEX}zz", "{SHA256.ROT13}abc", "{PLAIN.HEX}x", "{MD5}abc",
		"{CRYPT}abXYZ", "{SHA512-CRYPT}$6$rounds=x$salt$",
	} {
		if _, err := parseSecret(v); err == nil {
			t.Errorf("%s accepted", v)
		}
	}
}

func TestUsersFileSchemes(t *testing.T) {
	var b strings.Builder
	for i, v := range doveadmVectors {
		b.WriteString(string(rune('a'+i)) + ":" + v + "::::\n")
	}
	u, err := LoadUsers(writeUsers(t, b.String()))
	if err != nil {
		t.Fatal(err)
	}
	for i := range doveadmVectors {
		name := string(rune('a' + i))
		if err := u.Verify(name, "pässword 1"); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if err := u.Verify(name, "wrong"); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("%s wrong password: %v", name, err)
		}
	}
}

// Dovecot itself verifies what MakeSecret writes.
func TestMakeSecretDoveadm(t *testing.T) {
	cyrustest.RequireTool(t, "doveadm", "dovecot-core")
	for _, scheme := range []string{"ARGON2ID", "BLF-CRYPT", "SHA512-CRYPT", "SHA256-CRYPT"} {
		v, err := MakeSecret(scheme, "pw ü")
		if err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("doveadm", "pw", "-t", v, "-p", "pw ü").CombinedOutput(); err != nil {
			t.Errorf("doveadm refuses %s: %v %s", v, err, out)
		}
		if err := exec.Command("doveadm", "pw", "-t", v, "-p", "pw u").Run(); err == nil {
			t.Errorf("doveadm accepts a wrong password for %s", v)
		}
	}
}

func FuzzParseSecret(f *testing.F) {
	for _, v := range doveadmVectors {
		f.Add(v, "pässword 1")
	}
	f.Add("{SHA512-CRYPT}$6$rounds=1000$x$", "")
	f.Add("{ARGON2ID}$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaGhhc2g", "pw")
	f.Fuzz(func(t *testing.T, v, pw string) {
		if strings.Contains(v, "rounds=") || strings.Contains(v, "m=") {
			t.Skip("costly parameters are the operator's to choose")
		}
		if s, err := parseSecret(v); err == nil {
			s.matches(pw)
		}
	})
}
