package auth

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// LDAP checks passwords by binding to a directory as the user, as
// saslauthd's ldap mechanism does: find the user's entry (Filter under
// Base, searching as BindDN, or anonymously), then bind as that entry
// with the password given.
type LDAP struct {
	// URI is the server, ldap://host:port or ldaps://host:port, or
	// several separated by spaces, tried in order ("ldap_uri").
	URI string
	// Base is where users are searched for ("ldap_base").
	Base string
	// Filter finds a user's entry ("ldap_filter"), "(uid=%u)" when
	// empty: %u is the login name, %U its part before '@', %d its part
	// after '@', %% a '%'; each escaped for a filter.
	Filter string
	// BindDN and Password are the search's identity ("ldap_bind_dn",
	// "ldap_password"); empty searches anonymously.
	BindDN, Password string
	// Timeout bounds one check, connecting included; zero means 10s.
	Timeout time.Duration
}

// Verify implements Checker. A wrong password or an unknown user is
// ErrBadCredentials; a directory that cannot be reached, refuses the
// search identity or answers otherwise is ErrUnavailable.
func (l *LDAP) Verify(name, password string) error {
	// An empty password is an unauthenticated bind, which servers accept
	// for any DN (RFC 4513, 5.1.2): never take it as a login.
	if name == "" || password == "" {
		return ErrBadCredentials
	}
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	var conn *ldap.Conn
	err := errors.New("no ldap_uri")
	for _, uri := range strings.Fields(l.URI) {
		if conn, err = ldap.DialURL(uri, ldap.DialWithDialer(&net.Dialer{Timeout: timeout})); err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("%w: ldap: %w", ErrUnavailable, err)
	}
	defer conn.Close()
	conn.SetTimeout(timeout)
	if l.BindDN != "" {
		if err := conn.Bind(l.BindDN, l.Password); err != nil {
			return fmt.Errorf("%w: ldap: binding as %s to search: %w", ErrUnavailable, l.BindDN, err)
		}
	}
	filter := l.Filter
	if filter == "" {
		filter = "(uid=%u)"
	}
	res, err := conn.Search(ldap.NewSearchRequest(l.Base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		2, int(timeout/time.Second), false, expandFilter(filter, name), []string{"1.1"}, nil))
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return fmt.Errorf("%w: ldap: searching for %s: %w", ErrUnavailable, name, err)
	}
	switch {
	case res == nil || len(res.Entries) == 0:
		return fmt.Errorf("%w: ldap: no entry for %s", ErrBadCredentials, name)
	case len(res.Entries) > 1:
		return fmt.Errorf("%w: ldap: several entries for %s", ErrBadCredentials, name)
	}
	dn := res.Entries[0].DN
	err = conn.Bind(dn, password)
	var le *ldap.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &le) && le.ResultCode == ldap.LDAPResultInvalidCredentials:
		return fmt.Errorf("%w: ldap: bind as %s refused", ErrBadCredentials, dn)
	}
	return fmt.Errorf("%w: ldap: binding as %s: %w", ErrUnavailable, dn, err)
}

// expandFilter fills in saslauthd's %u, %U and %d, escaped.
func expandFilter(filter, name string) string {
	local, domain, _ := strings.Cut(name, "@")
	var b strings.Builder
	for i := 0; i < len(filter); i++ {
		if filter[i] != '%' || i+1 == len(filter) {
			b.WriteByte(filter[i])
			continue
		}
		i++
		switch filter[i] {
		case 'u':
			b.WriteString(ldap.EscapeFilter(name))
		case 'U':
			b.WriteString(ldap.EscapeFilter(local))
		case 'd':
			b.WriteString(ldap.EscapeFilter(domain))
		default:
			b.WriteByte(filter[i])
		}
	}
	return b.String()
}
