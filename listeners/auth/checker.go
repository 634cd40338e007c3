package auth

import "errors"

// Checker checks a user's password. *Users is one; a frontend may also ask
// the backend that holds the user's INBOX (imapproxy.INBOXCheck).
type Checker interface {
	Verify(name, password string) error
}

// FirstOf accepts a login that any of its checkers accepts, asking them in
// order. When all refuse, their reasons are joined, so that the log says
// whether the password was wrong everywhere or a backend could not be asked.
type FirstOf []Checker

// Verify implements Checker.
func (f FirstOf) Verify(name, password string) error {
	var errs []error
	for _, c := range f {
		err := c.Verify(name, password)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return ErrBadCredentials
	}
	return errors.Join(errs...)
}
