package auth

import "strings"

// ProxyCredentials are what a frontend presents to its backends, as Cyrus
// frontends do: it authenticates as Authname ("proxy_authname") and asserts
// the client's identity as the authorization id.
type ProxyCredentials struct {
	// Authname is the authentication id; Cyrus's default is "proxy".
	Authname string
	// Password is the fallback password ("proxy_password").
	Password string
	// ServerPasswords are per-backend passwords ("<shorthost>_password"),
	// keyed by short host: the backend's server name up to its first '.'
	// ("mail1.example.com" -> "mail1", "127.0.0.1:1143" -> "127").
	ServerPasswords map[string]string
}

// PasswordFor returns the password to use at the backend named server:
// its "<shorthost>_password" if set, else Password.
func (c ProxyCredentials) PasswordFor(server string) string {
	short, _, _ := strings.Cut(server, ".")
	if pw, ok := c.ServerPasswords[short]; ok {
		return pw
	}
	return c.Password
}
