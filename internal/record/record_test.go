package record

import (
	"strings"
	"testing"
)

// TestDecoder: fields come back as written, with or without shared
// strings, and a short, long or unversioned value is an error.
func TestDecoder(t *testing.T) {
	v := AppendString(Uvarint(nil, 300), "name")
	v = append(v, 7)
	for _, share := range []bool{false, true} {
		d := NewDecoder(v, share)
		if n, s, b := d.Uvarint(), d.String(), d.Byte(); n != 300 || s != "name" || b != 7 {
			t.Errorf("share %v: %d %q %d", share, n, s, b)
		}
		if err := d.Err("test", []byte("k")); err != nil {
			t.Errorf("share %v: %v", share, err)
		}
	}
	for _, bad := range [][]byte{nil, {2, 1}, v[:len(v)-2], append(append([]byte(nil), v...), 0)} {
		d := NewDecoder(bad, true)
		d.Uvarint()
		_ = d.String()
		d.Byte()
		if err := d.Err("test", []byte("k")); err == nil || !strings.HasPrefix(err.Error(), "test: corrupt value") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
