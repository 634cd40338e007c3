package membership

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
)

func TestMetaRoundTrip(t *testing.T) {
	for _, m := range []Meta{
		{Cluster: "c", Server: "s"},
		{Cluster: "murder", Server: "backend-1.example.org", Roles: []string{"backend", "replica"},
			MUPDATE: "[2001:db8::1]:3905", IMAP: "10.0.0.1:143", POP3: "10.0.0.1:110", LMTP: "10.0.0.1:24", Version: "0.1.0"},
		{Cluster: "c", Server: "s", MUPDATE: "[2001:db8::1]:3905", IMAP: "[2001:db8::1]:143", LMTP: ":24"},
		{Cluster: "c", Server: "s", MUPDATE: "a:1", IMAP: "b:2", POP3: "a:3", LMTP: "b:4"},
		{Cluster: "c", Server: "s", Roles: []string{"master"}, MUPDATE: "a:1", Storage: "failed"},
	} {
		for _, leaving := range []bool{false, true} {
			b, err := encodeMeta(m, leaving)
			if err != nil {
				t.Fatal(err)
			}
			got, gotLeaving, err := decodeMeta(b)
			if err != nil || fmt.Sprint(got) != fmt.Sprint(m) || gotLeaving != leaving {
				t.Errorf("round trip of %+v (leaving %v): %+v %v %v", m, leaving, got, gotLeaving, err)
			}
		}
	}
}

// TestMetaCompact: a node with every field at a generous length fits
// memberlist's limit with room to spare, the shared host written once.
func TestMetaCompact(t *testing.T) {
	host := strings.Repeat("h", 60) + ".example.org"
	m := Meta{Cluster: strings.Repeat("c", 30), Server: host,
		Roles: []string{"master", "replica", "frontend", "backend"}, MUPDATE: host + ":3905", IMAP: host + ":143",
		POP3: host + ":110", LMTP: host + ":24", Version: "10.20.30-rc1"}
	b, err := encodeMeta(m, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > memberlist.MetaMaxSize/2 {
		t.Errorf("metadata is %d bytes", len(b))
	}
	if got, _, err := decodeMeta(b); err != nil || fmt.Sprint(got) != fmt.Sprint(m) {
		t.Errorf("round trip: %+v %v", got, err)
	}
}

func TestMetaDecodeErrors(t *testing.T) {
	good, _ := encodeMeta(Meta{Cluster: "c", Server: "s"}, false)
	for name, b := range map[string][]byte{
		"empty":      nil,
		"version":    {9, 1, 1, 'c'},
		"truncated":  good[:len(good)-1],
		"bad length": {metaVersion, tagServer, 0xff},
	} {
		if _, _, err := decodeMeta(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A newer node's unknown field is skipped.
	b := append(append([]byte{}, good...), 200, 2, 'x', 'y')
	if m, _, err := decodeMeta(b); err != nil || m.Server != "s" {
		t.Errorf("unknown tag: %+v %v", m, err)
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "key")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for text, want := range map[string]int{
		"000102030405060708090a0b0c0d0e0f\n":                               16,
		"  000102030405060708090a0b0c0d0e0f1011121314151617  ":             24,
		"000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F": 32,
		"AAECAwQFBgcICQoLDA0ODw==\n":                                       16,
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=":                     32,
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8":                      32,
	} {
		k, err := LoadKey(write(text))
		if err != nil || len(k) != want {
			t.Errorf("%q: %d bytes, %v; want %d", text, len(k), err, want)
		}
	}
	for _, text := range []string{"", "0001", "not a key at all!", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX" + "GBkaGxwdHh8gISIj"} {
		if k, err := LoadKey(write(text)); err == nil {
			t.Errorf("%q: accepted as %d bytes", text, len(k))
		}
	}
	if _, err := LoadKey(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestParseLogLine(t *testing.T) {
	for line, want := range map[string]string{
		"[DEBUG] memberlist: Stream connection from=127.0.0.1:4567\n":                                         "DEBUG|Stream connection|127.0.0.1:4567",
		"[ERR] memberlist: failed to receive: No installed keys could decrypt the message from=10.0.0.2:7946": "WARN|failed to receive: No installed keys could decrypt the message|10.0.0.2:7946",
		"[WARN] memberlist: Refuting a suspect message (from: n2)":                                            "WARN|Refuting a suspect message (from: n2)|",
		"[INFO] memberlist: Marking n3 as failed, suspect timeout reached (0 peer confirmations)":             "INFO|Marking n3 as failed, suspect timeout reached (0 peer confirmations)|",
		"something unexpected": "INFO|something unexpected|",
	} {
		level, msg, remote := parseLine(line)
		if got := level.String() + "|" + msg + "|" + remote; got != want {
			t.Errorf("%q: got %q, want %q", line, got, want)
		}
	}
}
