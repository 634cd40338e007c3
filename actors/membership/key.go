package membership

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// LoadKey reads a cluster key from a file: 16, 24 or 32 bytes (AES-128,
// -192 or -256) written in hex or base64, surrounding white space ignored.
// Every member needs the same key; gossip from a node without it is dropped.
func LoadKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("membership: cluster key: %w", err)
	}
	text := strings.TrimSpace(string(b))
	// Hex first: a hex key is also valid base64 text, of another length.
	if k, err := hex.DecodeString(text); err == nil && validKeyLen(len(k)) {
		return k, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(text); err == nil && validKeyLen(len(k)) {
			return k, nil
		}
	}
	return nil, fmt.Errorf("membership: cluster key in %s: want 16, 24 or 32 bytes in hex or base64", path)
}

func validKeyLen(n int) bool { return n == 16 || n == 24 || n == 32 }
