package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/rookery/rookery/actors/pusher"
	"github.com/rookery/rookery/listeners/admin"
	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/listeners/imap"
	"github.com/rookery/rookery/listeners/lmtp"
	"github.com/rookery/rookery/listeners/mupdate"
	"github.com/rookery/rookery/listeners/pop3"
	"github.com/rookery/rookery/store/mailstore"
)

// startBackend opens the mail store, spawns the backend-pusher (when there
// is a master to push to) and starts the IMAP, POP3 and LMTP listeners,
// each with STARTTLS, and the implicit-TLS ones.
func (n *Node) startBackend(users *auth.Users, internal string) error {
	var err error
	n.mail, err = mailstore.Open(filepath.Join(n.cfg.DataDir, "mail"), mailstore.Options{
		Logger:    n.log.With("component", "mailstore"),
		Summarize: imap.Summarize,
		OnFault:   n.storageChanged("mail"),
	})
	if err != nil {
		return err
	}
	n.storeOpened("mail")

	var registry imap.MailboxRegistry = imap.NopRegistry{}
	master, creds := n.cfg.MUPDATEServer, mupdate.ClientConfig{
		Username: n.cfg.MUPDATEAuthname,
		Authzid:  n.cfg.MUPDATEUsername,
		Password: n.cfg.MUPDATEPassword,
	}
	if master == "" && n.master != nil {
		// The master runs here: push to it over its own listener, so the
		// backend behaves exactly as it would against a remote master.
		master = n.MUPDATEAddr()
		creds = mupdate.ClientConfig{Username: auth.InternalUser, Password: internal}
	}
	if master != "" || n.cfg.GossipListen != "" {
		// With gossip and no master yet, the pusher waits for SetMaster.
		creds.Timeout = n.cfg.ClientTimeout
		creds.TLS = n.mupdateClientTLS
		creds.Logger = n.log.With("role", "backend-pusher")
		n.pusher, err = n.system.Root.SpawnNamed(pusher.Props(pusher.Config{
			Master:     master,
			Client:     creds,
			ServerName: n.cfg.ServerName,
			Partition:  n.cfg.Partition,
			Local: func(fn func(pusher.Mailbox) error) error {
				var ferr error
				err := n.mail.Mailboxes("", func(m mailstore.Mailbox) bool {
					ferr = fn(pusher.Mailbox{Name: m.Name, ACL: m.ACL})
					return ferr == nil
				})
				if err != nil {
					return err
				}
				return ferr
			},
			Logger: n.log.With("role", "backend-pusher"),
		}), "backend-pusher")
		if err != nil {
			return fmt.Errorf("node: %w", err)
		}
		registry = &pushRegistry{n: n}
	} else {
		n.log.Warn("backend without a master: mailbox changes are not registered anywhere", "hint", "set mupdate_server or gossip_listen")
	}

	tlsConf, err := n.tlsConfig()
	if err != nil {
		return err
	}
	policy := &auth.MailPolicy{Users: n.passwordChecker(users, nil), Admins: n.cfg.Admins, ProxyServers: n.cfg.ProxyServers}
	n.imap, err = imap.NewServer(imap.Config{
		ServerName:        n.cfg.ServerName,
		Version:           Version,
		Store:             n.mail,
		Login:             policy.Login,
		Registry:          registry,
		Separator:         n.cfg.Separator,
		AllowAllSubscribe: n.cfg.AllowAllSubscribe,
		MaxMessageSize:    n.cfg.MaxMessageSize,
		IdleTimeout:       n.cfg.IMAPIdleTimeout,
		MaxConns:          n.cfg.imapConnectionsMax(),
		LoginTimeout:      n.cfg.LoginTimeout,
		MaxConnsPerUser:   n.cfg.MaxLoginsPerUser,
		FailedLoginPause:  n.cfg.FailedLoginPause,
		Throttle:          n.throttle,
		DiskSpace:         diskSpace(filepath.Join(n.cfg.DataDir, "mail")),
		TLS:               tlsConf,
		Plaintext:         n.plaintextAllowed,
		HandshakeTimeout:  n.cfg.ClientTimeout,
		Metrics:           n.listenerMetrics("imap", "imap", n.metrics.IMAP),
		Logger:            n.log.With("listener", "imap"),
	})
	if err != nil {
		return err
	}
	if err := n.listen(n.cfg.IMAPListen, nil, "imap", &n.imapLn, n.imap.Serve); err != nil {
		return err
	}
	if err := n.listen(n.cfg.IMAPSListen, tlsConf, "imaps", &n.imapsLn, n.imap.Serve); err != nil {
		return err
	}

	if n.cfg.POP3Listen != "" || n.cfg.POP3SListen != "" {
		n.pop3, err = pop3.NewServer(pop3.ServerConfig{
			ServerName:       n.cfg.ServerName,
			Store:            n.mail,
			Login:            policy.Login,
			IdleTimeout:      n.cfg.POP3IdleTimeout,
			LoginTimeout:     n.cfg.LoginTimeout,
			MaxConnsPerUser:  n.cfg.MaxLoginsPerUser,
			FailedLoginPause: n.cfg.FailedLoginPause,
			TLS:              tlsConf,
			Plaintext:        n.plaintextAllowed,
			HandshakeTimeout: n.cfg.ClientTimeout,
			Throttle:         n.throttle,
			Metrics:          n.listenerMetrics("pop3", "pop3", n.metrics.POP3),
			Logger:           n.log.With("listener", "pop3"),
		})
		if err != nil {
			return err
		}
		if err := n.listen(n.cfg.POP3Listen, nil, "pop3", &n.pop3Ln, n.pop3.Serve); err != nil {
			return err
		}
		if err := n.listen(n.cfg.POP3SListen, tlsConf, "pop3s", &n.pop3sLn, n.pop3.Serve); err != nil {
			return err
		}
	}
	if n.cfg.LMTPListen != "" {
		n.lmtp, err = lmtp.NewServer(lmtp.ServerConfig{
			ServerName:       n.cfg.ServerName,
			Store:            n.mail,
			Login:            policy.Login,
			Admins:           n.cfg.ProxyServers,
			RequireAuth:      n.cfg.LMTPRequireAuth,
			Separator:        n.cfg.Separator,
			MaxMessageSize:   n.cfg.MaxMessageSize,
			LoginTimeout:     n.cfg.LoginTimeout,
			FailedLoginPause: n.cfg.FailedLoginPause,
			TLS:              tlsConf,
			Plaintext:        n.plaintextAllowed,
			HandshakeTimeout: n.cfg.ClientTimeout,
			Throttle:         n.throttle,
			Metrics:          n.listenerMetrics("lmtp", "lmtp", n.metrics.LMTP),
			Logger:           n.log.With("listener", "lmtp"),
		})
		if err != nil {
			return err
		}
		if err := n.listen(n.cfg.LMTPListen, nil, "lmtp", &n.lmtpLn, n.lmtp.Serve); err != nil {
			return err
		}
	}
	return nil
}

// POP3Addr is the POP3 listener's address ("" when off).
func (n *Node) POP3Addr() string { return addrOf(n.pop3Ln) }

// LMTPAddr is the LMTP listener's address ("" when off).
func (n *Node) LMTPAddr() string { return addrOf(n.lmtpLn) }

func addrOf(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

// pushRegistry sends a backend's mailbox changes through the pusher.
type pushRegistry struct{ n *Node }

// deadline is when the IMAP command stops waiting for the master.
func deadline(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok && time.Until(d) < askTimeout {
		return d
	}
	return time.Now().Add(askTimeout)
}

func (r *pushRegistry) ask(msg any, until time.Time) error {
	res, err := r.n.system.Root.RequestFuture(r.n.pusher, msg, max(time.Until(until), time.Millisecond)).Result()
	if err != nil {
		return fmt.Errorf("%w: %v", imap.ErrRegistryUnavailable, err)
	}
	err = res.(*pusher.Reply).Err
	switch {
	case errors.Is(err, pusher.ErrUnavailable):
		return fmt.Errorf("%w: %v", imap.ErrRegistryUnavailable, err)
	case errors.Is(err, pusher.ErrRefused):
		return fmt.Errorf("%w: %v", imap.ErrRegistryRefused, err)
	}
	return err
}

func (r *pushRegistry) Reserve(ctx context.Context, name string) error {
	d := deadline(ctx)
	return r.ask(&pusher.Reserve{Name: name, Deadline: d}, d)
}

func (r *pushRegistry) Activate(ctx context.Context, name, acl string) error {
	d := deadline(ctx)
	return r.ask(&pusher.Activate{Name: name, ACL: acl, Deadline: d}, d)
}

func (r *pushRegistry) Delete(ctx context.Context, name string) error {
	d := deadline(ctx)
	return r.ask(&pusher.Delete{Name: name, Deadline: d}, d)
}

// IMAPAddr is the IMAP listener's address ("" when off).
func (n *Node) IMAPAddr() string { return addrOf(n.imapLn) }

// IMAPSAddr is the implicit-TLS IMAP listener's address ("" when off).
func (n *Node) IMAPSAddr() string { return addrOf(n.imapsLn) }

// POP3SAddr is the implicit-TLS POP3 listener's address ("" when off).
func (n *Node) POP3SAddr() string { return addrOf(n.pop3sLn) }

// Mail is the backend's mail store (nil without the backend role).
func (n *Node) Mail() *mailstore.Store { return n.mail }

// PusherStatus is the backend-pusher's state; ok is false when the node
// pushes to no master.
func (n *Node) PusherStatus() (st pusher.Status, ok bool) {
	if n.pusher == nil {
		return st, false
	}
	res, err := n.system.Root.RequestFuture(n.pusher, &pusher.GetStatus{}, askTimeout).Result()
	if err != nil {
		return st, false
	}
	return *res.(*pusher.Status), true
}

// Mboxlist compares this backend's mailboxes with the master's list and,
// with repair, makes the master match them (the admin listener's
// /mboxlist).
func (n *Node) Mboxlist(ctx context.Context, repair bool) (*admin.Mboxlist, error) {
	if n.pusher == nil {
		return nil, errors.New("node: not a backend of a murder")
	}
	d := time.Now().Add(askTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(d) {
		d = dl
	}
	res, err := n.system.Root.RequestFuture(n.pusher, &pusher.Compare{Repair: repair, Deadline: d}, time.Until(d)).Result()
	if err != nil {
		return nil, fmt.Errorf("node: mboxlist: %w", err)
	}
	r := res.(*pusher.CompareReply)
	if r.Err != nil {
		return nil, r.Err
	}
	return &admin.Mboxlist{Missing: r.Missing, Stale: r.Stale, Conflicts: r.Conflicts, Repaired: r.Repaired}, nil
}
