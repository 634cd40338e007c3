package node

import (
	"github.com/rookery/rookery/listeners/auth"
)

// passwordChecker is what this node's mail listeners check client
// passwords against: the password_check methods in order. inbox is the
// frontend's INBOX-backend check, nil on a backend, which has no other
// backend to ask and so skips that method.
func (n *Node) passwordChecker(users *auth.Users, inbox auth.Checker) auth.Checker {
	var check auth.FirstOf
	for _, m := range n.cfg.PasswordCheck {
		switch m {
		case "users":
			check = append(check, users)
		case "ldap":
			l := n.cfg.LDAP
			if l.Timeout == 0 {
				l.Timeout = n.cfg.ClientTimeout
			}
			check = append(check, &l)
		case "saslauthd":
			check = append(check, &auth.Saslauthd{Path: n.cfg.SaslauthdPath, Service: "imap", Timeout: n.cfg.ClientTimeout})
		case "backend":
			if inbox != nil {
				check = append(check, inbox)
			}
		}
	}
	if len(check) == 0 {
		// A backend told only to ask the backend keeps its users file.
		return users
	}
	if len(check) == 1 {
		return check[0]
	}
	return check
}
