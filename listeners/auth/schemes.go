package auth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Schemes are the password schemes a users file may use, as Dovecot
// names them; MakeSecret writes the first three.
var Schemes = []string{"ARGON2ID", "BLF-CRYPT", "SHA512-CRYPT", "SHA256-CRYPT", "CRYPT",
	"SSHA512", "SSHA256", "SSHA", "SHA512", "SHA256", "SHA", "PLAIN"}

// checkSecret validates a stored secret of a known scheme, so that a
// malformed hash is reported when the file is read, not at every login.
func checkSecret(scheme, value string) (secret, error) {
	base, enc, _ := strings.Cut(scheme, ".")
	if enc != "" && enc != "HEX" && enc != "B64" && enc != "BASE64" {
		return secret{}, fmt.Errorf("unknown encoding .%s in {%s}", enc, scheme)
	}
	switch base {
	case "PLAIN", "CLEAR", "CLEARTEXT":
		if enc != "" {
			return secret{}, fmt.Errorf("{%s} takes no encoding", base)
		}
		return secret{scheme: "PLAIN", value: value}, nil
	case "BCRYPT", "BLF-CRYPT", "SHA512-CRYPT", "SHA256-CRYPT", "CRYPT":
		if enc != "" {
			return secret{}, fmt.Errorf("{%s} takes no encoding", base)
		}
		return checkCrypt(base, value)
	case "ARGON2ID", "ARGON2I":
		if _, err := parseArgon2(value, strings.ToLower(base)); err != nil {
			return secret{}, err
		}
		return secret{scheme: base, value: value}, nil
	case "SHA", "SHA1", "SHA256", "SHA512", "SSHA", "SSHA256", "SSHA512":
		raw, err := decodeDigest(value, enc)
		if err != nil {
			return secret{}, fmt.Errorf("bad {%s} value: %v", scheme, err)
		}
		h := digestOf(base)
		n := h().Size()
		if (base[0] == 'S' && base[1] == 'S' && len(raw) <= n) || (base[1] != 'S' && len(raw) != n) {
			return secret{}, fmt.Errorf("bad {%s} value: wrong length", scheme)
		}
		return secret{scheme: base, value: string(raw)}, nil
	}
	return secret{}, fmt.Errorf("unsupported scheme {%s} (known: %s)", scheme, strings.Join(Schemes, ", "))
}

// checkCrypt accepts the crypt(3) forms Dovecot writes: bcrypt ($2y$ and
// kin) and SHA-crypt ($5$, $6$); {CRYPT} takes any of them.
func checkCrypt(scheme, value string) (secret, error) {
	switch {
	case strings.HasPrefix(value, "$2") && scheme != "SHA512-CRYPT" && scheme != "SHA256-CRYPT":
		if _, err := bcrypt.Cost([]byte(value)); err != nil {
			return secret{}, fmt.Errorf("bad bcrypt hash: %v", err)
		}
		return secret{scheme: "BCRYPT", value: value}, nil
	case strings.HasPrefix(value, "$6$") && (scheme == "SHA512-CRYPT" || scheme == "CRYPT"),
		strings.HasPrefix(value, "$5$") && (scheme == "SHA256-CRYPT" || scheme == "CRYPT"):
		if _, _, _, err := parseShaCrypt(value); err != nil {
			return secret{}, err
		}
		return secret{scheme: "SHA-CRYPT", value: value}, nil
	}
	return secret{}, fmt.Errorf("{%s} value is not a crypt hash this scheme takes", scheme)
}

// matches compares password with s in constant time (bcrypt and
// Argon2 compare in constant time themselves).
func (s secret) matches(password string) bool {
	switch s.scheme {
	case "PLAIN":
		return subtle.ConstantTimeCompare([]byte(s.value), []byte(password)) == 1
	case "BCRYPT":
		return bcrypt.CompareHashAndPassword([]byte(s.value), []byte(password)) == nil
	case "SHA-CRYPT":
		got, err := shaCrypt(password, s.value)
		return err == nil && subtle.ConstantTimeCompare([]byte(got), []byte(s.value)) == 1
	case "ARGON2ID", "ARGON2I":
		a, err := parseArgon2(s.value, strings.ToLower(s.scheme))
		if err != nil {
			return false
		}
		return subtle.ConstantTimeCompare(a.key(password), a.hash) == 1
	case "SHA", "SHA1", "SHA256", "SHA512", "SSHA", "SSHA256", "SSHA512":
		h := digestOf(s.scheme)()
		n := h.Size()
		stored := []byte(s.value)
		h.Write([]byte(password))
		h.Write(stored[n:]) // the salt, empty for unsalted schemes
		return subtle.ConstantTimeCompare(h.Sum(nil), stored[:n]) == 1
	}
	return false
}

func digestOf(scheme string) func() hash.Hash {
	switch {
	case strings.HasSuffix(scheme, "256"):
		return sha256.New
	case strings.HasSuffix(scheme, "512"):
		return sha512.New
	}
	return sha1.New
}

// decodeDigest reads a Dovecot digest: base64 unless the scheme says
// .HEX (Dovecot's default for these schemes is base64).
func decodeDigest(value, enc string) ([]byte, error) {
	if enc == "HEX" {
		return hex.DecodeString(value)
	}
	return base64.StdEncoding.DecodeString(value)
}

// MakeSecret hashes password with a fresh salt into the value of a users
// file line ("{SCHEME}..."), in the form `doveadm pw -s SCHEME` prints.
func MakeSecret(scheme, password string) (string, error) {
	switch strings.ToUpper(scheme) {
	case "BLF-CRYPT", "BCRYPT":
		h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
		if err != nil {
			return "", fmt.Errorf("auth: %w", err)
		}
		// Dovecot writes the $2y$ variant; the hash is the same.
		return "{BLF-CRYPT}$2y$" + string(h[4:]), nil
	case "SHA512-CRYPT":
		h, err := shaCrypt(password, "$6$"+randomCryptSalt())
		return "{SHA512-CRYPT}" + h, err
	case "SHA256-CRYPT":
		h, err := shaCrypt(password, "$5$"+randomCryptSalt())
		return "{SHA256-CRYPT}" + h, err
	case "ARGON2ID":
		a := argon2Hash{variant: "argon2id", memory: 65536, time: 3, threads: 1, salt: make([]byte, 16)}
		rand.Read(a.salt) // never fails (crypto/rand since Go 1.24)
		a.hash = a.keyLen(password, 32)
		return "{ARGON2ID}" + a.String(), nil
	}
	return "", fmt.Errorf("auth: cannot make {%s} (use ARGON2ID, BLF-CRYPT, SHA512-CRYPT or SHA256-CRYPT)", scheme)
}

// argon2Hash is the PHC string libsodium (and so Dovecot) writes:
// $argon2id$v=19$m=KiB,t=passes,p=lanes$salt$hash, base64 unpadded.
type argon2Hash struct {
	variant               string
	memory, time, threads uint32
	salt, hash            []byte
}

func parseArgon2(s, variant string) (argon2Hash, error) {
	f := strings.Split(s, "$")
	bad := func(why string) (argon2Hash, error) {
		return argon2Hash{}, fmt.Errorf("bad %s hash: %s", variant, why)
	}
	if len(f) != 6 || f[0] != "" || f[1] != variant {
		return bad("want $" + variant + "$v=19$m=..,t=..,p=..$salt$hash")
	}
	if f[2] != "v=19" {
		return bad("only version 19 is supported")
	}
	a := argon2Hash{variant: variant}
	if _, err := fmt.Sscanf(f[3], "m=%d,t=%d,p=%d", &a.memory, &a.time, &a.threads); err != nil {
		return bad("parameters: " + err.Error())
	}
	if a.time < 1 || a.threads < 1 || a.threads > 255 || a.memory < 8*a.threads {
		return bad("parameters out of range")
	}
	var err error
	if a.salt, err = base64.RawStdEncoding.DecodeString(f[4]); err != nil {
		return bad("salt: " + err.Error())
	}
	if a.hash, err = base64.RawStdEncoding.DecodeString(f[5]); err != nil || len(a.hash) < 4 {
		return bad("hash not base64 or too short")
	}
	return a, nil
}

func (a argon2Hash) key(password string) []byte { return a.keyLen(password, uint32(len(a.hash))) }

func (a argon2Hash) keyLen(password string, n uint32) []byte {
	if a.variant == "argon2i" {
		return argon2.Key([]byte(password), a.salt, a.time, a.memory, uint8(a.threads), n)
	}
	return argon2.IDKey([]byte(password), a.salt, a.time, a.memory, uint8(a.threads), n)
}

func (a argon2Hash) String() string {
	return fmt.Sprintf("$%s$v=19$m=%d,t=%d,p=%d$%s$%s", a.variant, a.memory, a.time, a.threads,
		base64.RawStdEncoding.EncodeToString(a.salt), base64.RawStdEncoding.EncodeToString(a.hash))
}

// SHA-crypt, as specified by Ulrich Drepper ("Unix crypt using SHA-256
// and SHA-512") and implemented by glibc's crypt(3) for $5$ and $6$.
const (
	cryptB64        = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	shaCryptRounds  = 5000
	shaCryptMinRnds = 1000
	shaCryptMaxRnds = 999999999
	shaCryptMaxSalt = 16
)

var errShaCrypt = errors.New("bad SHA-crypt hash: want $5$ or $6$, [rounds=N$], salt, [$hash]")

// parseShaCrypt splits a setting or a full hash into its id ("5"/"6"),
// rounds (0 when not given) and salt.
func parseShaCrypt(setting string) (id string, rounds int, salt string, err error) {
	if len(setting) < 3 || setting[0] != '$' || (setting[1] != '5' && setting[1] != '6') || setting[2] != '$' {
		return "", 0, "", errShaCrypt
	}
	id, rest := setting[1:2], setting[3:]
	if r, ok := strings.CutPrefix(rest, "rounds="); ok {
		num, after, found := strings.Cut(r, "$")
		n, perr := strconv.ParseUint(num, 10, 64)
		if !found || perr != nil {
			return "", 0, "", errShaCrypt
		}
		rounds = int(min(max(n, shaCryptMinRnds), shaCryptMaxRnds))
		rest = after
	}
	salt, _, _ = strings.Cut(rest, "$")
	if len(salt) > shaCryptMaxSalt {
		salt = salt[:shaCryptMaxSalt]
	}
	return id, rounds, salt, nil
}

// shaCrypt computes crypt(password, setting) for a $5$ or $6$ setting.
func shaCrypt(password, setting string) (string, error) {
	id, rounds, salt, err := parseShaCrypt(setting)
	if err != nil {
		return "", err
	}
	newHash, perm := sha512.New, sha512Perm
	if id == "5" {
		newHash, perm = sha256.New, sha256Perm
	}
	p, s := []byte(password), []byte(salt)
	n := rounds
	if n == 0 {
		n = shaCryptRounds
	}

	h := newHash()
	h.Write(p)
	h.Write(s)
	h.Write(p)
	b := h.Sum(nil)

	h.Reset()
	h.Write(p)
	h.Write(s)
	h.Write(repeatTo(b, len(p)))
	for l := len(p); l > 0; l >>= 1 {
		if l&1 != 0 {
			h.Write(b)
		} else {
			h.Write(p)
		}
	}
	a := h.Sum(nil)

	h.Reset()
	for range len(p) {
		h.Write(p)
	}
	pp := repeatTo(h.Sum(nil), len(p))

	h.Reset()
	for range 16 + int(a[0]) {
		h.Write(s)
	}
	ss := repeatTo(h.Sum(nil), len(s))

	c := a
	for i := range n {
		h.Reset()
		if i&1 != 0 {
			h.Write(pp)
		} else {
			h.Write(c)
		}
		if i%3 != 0 {
			h.Write(ss)
		}
		if i%7 != 0 {
			h.Write(pp)
		}
		if i&1 != 0 {
			h.Write(c)
		} else {
			h.Write(pp)
		}
		c = h.Sum(c[:0])
	}

	var out strings.Builder
	out.WriteString("$" + id + "$")
	if rounds != 0 {
		fmt.Fprintf(&out, "rounds=%d$", rounds)
	}
	out.WriteString(salt)
	out.WriteByte('$')
	for _, g := range perm {
		w := uint(0)
		for _, i := range g[:3] {
			w <<= 8
			if i >= 0 {
				w |= uint(c[i])
			}
		}
		for range g[3] {
			out.WriteByte(cryptB64[w&0x3f])
			w >>= 6
		}
	}
	return out.String(), nil
}

// The byte order of SHA-crypt's output: each group is three digest
// indexes (-1 for a zero byte), most significant first, and the number of
// characters written from them.
var sha512Perm = [][4]int{
	{0, 21, 42, 4}, {22, 43, 1, 4}, {44, 2, 23, 4}, {3, 24, 45, 4}, {25, 46, 4, 4},
	{47, 5, 26, 4}, {6, 27, 48, 4}, {28, 49, 7, 4}, {50, 8, 29, 4}, {9, 30, 51, 4},
	{31, 52, 10, 4}, {53, 11, 32, 4}, {12, 33, 54, 4}, {34, 55, 13, 4}, {56, 14, 35, 4},
	{15, 36, 57, 4}, {37, 58, 16, 4}, {59, 17, 38, 4}, {18, 39, 60, 4}, {40, 61, 19, 4},
	{62, 20, 41, 4}, {-1, -1, 63, 2},
}

var sha256Perm = [][4]int{
	{0, 10, 20, 4}, {21, 1, 11, 4}, {12, 22, 2, 4}, {3, 13, 23, 4}, {24, 4, 14, 4},
	{15, 25, 5, 4}, {6, 16, 26, 4}, {27, 7, 17, 4}, {18, 28, 8, 4}, {9, 19, 29, 4},
	{-1, 31, 30, 3},
}

func repeatTo(b []byte, n int) []byte {
	return bytes.Repeat(b, n/len(b)+1)[:n]
}

// randomCryptSalt is 80 random bits in base32, whose letters crypt's
// alphabet includes.
func randomCryptSalt() string { return rand.Text()[:shaCryptMaxSalt] }
