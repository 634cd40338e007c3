package auth

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// ErrUnavailable is returned when a password source could not be asked
// (saslauthd or LDAP down, timed out, or answering garbage): the login is
// refused as a temporary failure, not as a wrong password.
var ErrUnavailable = errors.New("auth: password check unavailable")

// DefaultSaslauthdPath is Debian's saslauthd socket, Cyrus's default.
const DefaultSaslauthdPath = "/var/run/saslauthd/mux"

// Saslauthd checks passwords with a saslauthd daemon, as Cyrus's
// "sasl_pwcheck_method: saslauthd" does, so that the PAM, LDAP, Kerberos
// or rimap set-up made for Cyrus keeps working.
type Saslauthd struct {
	// Path is the daemon's socket ("sasl_saslauthd_path");
	// empty means DefaultSaslauthdPath.
	Path string
	// Service is the service name saslauthd passes on (PAM's service);
	// Cyrus's imapd says "imap".
	Service string
	// Realm is passed as the realm; usually empty.
	Realm string
	// Timeout bounds one check, connecting included; zero means 10s.
	Timeout time.Duration
}

// maxCounted is the longest string saslauthd reads; it drops the
// connection on anything longer.
const maxCounted = 256

// Verify implements Checker. saslauthd's protocol: four counted strings
// (two-byte big-endian length, then the bytes) - login, password,
// service, realm - answered by one counted string starting "OK" or "NO".
func (s *Saslauthd) Verify(name, password string) error {
	if name == "" || len(name) >= maxCounted || len(password) >= maxCounted {
		return ErrBadCredentials
	}
	path, timeout := s.Path, s.Timeout
	if path == "" {
		path = DefaultSaslauthdPath
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	conn, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return fmt.Errorf("%w: saslauthd: %w", ErrUnavailable, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	var req []byte
	for _, f := range []string{name, password, s.Service, s.Realm} {
		req = binary.BigEndian.AppendUint16(req, uint16(len(f)))
		req = append(req, f...)
	}
	if _, err := conn.Write(req); err != nil {
		return fmt.Errorf("%w: saslauthd: %w", ErrUnavailable, err)
	}
	r := bufio.NewReader(conn)
	var n uint16
	if err := binary.Read(r, binary.BigEndian, &n); err != nil {
		return fmt.Errorf("%w: saslauthd: reading the reply: %w", ErrUnavailable, err)
	}
	if n > 1024 {
		return fmt.Errorf("%w: saslauthd: reply of %d bytes", ErrUnavailable, n)
	}
	reply := make([]byte, n)
	if _, err := io.ReadFull(r, reply); err != nil {
		return fmt.Errorf("%w: saslauthd: reading the reply: %w", ErrUnavailable, err)
	}
	switch text := string(reply); {
	case strings.HasPrefix(text, "OK"):
		return nil
	case strings.HasPrefix(text, "NO"):
		return fmt.Errorf("%w: saslauthd: %s", ErrBadCredentials, strings.TrimSpace(text))
	default:
		return fmt.Errorf("%w: saslauthd: unexpected reply %q", ErrUnavailable, text)
	}
}
