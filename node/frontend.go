package node

import (
	"context"
	"slices"
	"time"

	"github.com/rookery/rookery/actors/membership"
	"github.com/rookery/rookery/actors/slave"
	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/listeners/frontend"
	"github.com/rookery/rookery/listeners/imapproxy"
	"github.com/rookery/rookery/listeners/lmtp"
	"github.com/rookery/rookery/listeners/pop3"
)

// startFrontend starts the IMAP, POP3 and LMTP proxies, routed by this
// node's mailbox list (its replica's, or the master's own).
func (n *Node) startFrontend(users *auth.Users) error {
	tlsConf, err := n.tlsConfig()
	if err != nil {
		return err
	}
	backendTLS, err := n.peerTLS()
	if err != nil {
		return err
	}
	var kick func(context.Context) error
	if n.slave != nil {
		kick = n.kick
	}
	proxy := auth.ProxyCredentials{
		Authname:        n.cfg.ProxyAuthname,
		Password:        n.cfg.ProxyPassword,
		ServerPasswords: n.cfg.ServerPasswords,
	}
	resolve := n.resolveBackend
	check := n.passwordChecker(users, &imapproxy.INBOXCheck{DB: n.store, Resolve: resolve, Timeout: n.cfg.ClientTimeout, TLS: backendTLS})
	sessions := n.proxySessions(&frontend.Table{DB: n.store, Kick: kick})
	n.imapProxy, err = imapproxy.NewServer(imapproxy.Config{
		ServerName:     n.cfg.ServerName,
		DB:             n.store,
		Kick:           kick,
		Resolve:        resolve,
		Users:          check,
		Admins:         n.cfg.Admins,
		Proxy:          proxy,
		ServerList:     n.cfg.ServerList,
		Separator:      n.cfg.Separator,
		Passthrough:    append(slices.Clone(imapproxy.DefaultPassthrough), n.cfg.FrontendExtensions...),
		Backends:       n.aliveBackends,
		TLS:            tlsConf,
		AllowPlaintext: n.cfg.AllowPlaintext,
		BackendTLS:     backendTLS,
		Limits: imapproxy.Limits{
			MaxLiteral:       n.cfg.MaxMessageSize,
			MaxConns:         n.cfg.imapConnectionsMax(),
			IdleTimeout:      n.cfg.IMAPIdleTimeout,
			LoginTimeout:     n.cfg.LoginTimeout,
			MaxConnsPerUser:  n.cfg.MaxLoginsPerUser,
			MaxConnsPerHost:  n.cfg.MaxConnsPerHost,
			ConnectTimeout:   n.cfg.ClientTimeout,
			FailedLoginPause: n.cfg.FailedLoginPause,
			Throttle:         n.throttle,
		},
		Metrics:    n.listenerMetrics("imapproxy", "imap", n.metrics.IMAP),
		NewSession: sessions,
		Logger:     n.log.With("listener", "imap-proxy"),
	})
	if err != nil {
		return err
	}
	if err := n.listen(n.cfg.IMAPListen, nil, "imap", &n.imapLn, n.imapProxy.Serve); err != nil {
		return err
	}
	if err := n.listen(n.cfg.IMAPSListen, tlsConf, "imaps", &n.imapsLn, n.imapProxy.Serve); err != nil {
		return err
	}
	n.pop3Proxy, err = pop3.NewProxy(pop3.ProxyConfig{
		ServerName:     n.cfg.ServerName,
		DB:             n.store,
		Resolve:        resolve,
		Users:          check,
		Proxy:          proxy,
		TLS:            tlsConf,
		AllowPlaintext: n.cfg.AllowPlaintext,
		BackendTLS:     backendTLS,
		Limits: pop3.Limits{
			IdleTimeout:      n.cfg.POP3IdleTimeout,
			LoginTimeout:     n.cfg.LoginTimeout,
			MaxConnsPerUser:  n.cfg.MaxLoginsPerUser,
			MaxConnsPerHost:  n.cfg.MaxConnsPerHost,
			ConnectTimeout:   n.cfg.ClientTimeout,
			FailedLoginPause: n.cfg.FailedLoginPause,
			Throttle:         n.throttle,
		},
		Metrics:    n.listenerMetrics("pop3proxy", "pop3", n.metrics.POP3),
		NewSession: sessions,
		Logger:     n.log.With("listener", "pop3-proxy"),
	})
	if err != nil {
		return err
	}
	if err := n.listen(n.cfg.POP3Listen, nil, "pop3", &n.pop3Ln, n.pop3Proxy.Serve); err != nil {
		return err
	}
	if err := n.listen(n.cfg.POP3SListen, tlsConf, "pop3s", &n.pop3sLn, n.pop3Proxy.Serve); err != nil {
		return err
	}
	n.lmtpProxy, err = lmtp.NewProxy(lmtp.ProxyConfig{
		ServerName:     n.cfg.ServerName,
		DB:             n.store,
		Kick:           kick,
		Resolve:        resolve,
		Users:          check,
		Admins:         n.cfg.Admins,
		Preauth:        !n.cfg.LMTPRequireAuth,
		Proxy:          proxy,
		TLS:            tlsConf,
		AllowPlaintext: n.cfg.AllowPlaintext,
		BackendTLS:     backendTLS,
		Limits: lmtp.Limits{
			MaxMessageSize:   n.cfg.MaxMessageSize,
			LoginTimeout:     n.cfg.LoginTimeout,
			ConnectTimeout:   n.cfg.ClientTimeout,
			FailedLoginPause: n.cfg.FailedLoginPause,
			Throttle:         n.throttle,
		},
		Metrics:    n.listenerMetrics("lmtpproxy", "lmtp", n.metrics.LMTP),
		NewSession: sessions,
		Logger:     n.log.With("listener", "lmtp-proxy"),
	})
	if err != nil {
		return err
	}
	return n.listen(n.cfg.LMTPListen, nil, "lmtp", &n.lmtpLn, n.lmtpProxy.Serve)
}

// kick makes the replica catch up with its master before a frontend
// retries a lookup that missed.
func (n *Node) kick(ctx context.Context) error {
	timeout := askTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
		if timeout <= 0 {
			return context.DeadlineExceeded
		}
	}
	res, err := n.system.Root.RequestFuture(n.slave, &slave.Sync{}, timeout).Result()
	if err != nil {
		return err
	}
	return res.(*slave.SyncReply).Err
}

// resolveBackend finds a backend's addresses: gossip first (Rookery
// backends announce theirs), then backend_addrs, then Cyrus's convention
// for server names (real Cyrus backends do not gossip).
func (n *Node) resolveBackend(server string) (imap, pop3, lmtp string, ok bool) {
	if n.cluster != nil {
		n.cluster.mu.Lock()
		m, found := n.cluster.members[server]
		n.cluster.mu.Unlock()
		if found && m.Meta.HasRole(string(RoleBackend)) {
			// A backend gossip saw fail is answered at once, not after a
			// connect timeout.
			if m.State != membership.Alive {
				return "", "", "", false
			}
			return m.Meta.IMAP, m.Meta.POP3, m.Meta.LMTP, true
		}
	}
	if a, ok := n.cfg.BackendAddrs[server]; ok {
		return a[0], a[1], a[2], true
	}
	return frontend.CyrusResolve(server)
}

// aliveBackends are the backends gossip sees up.
func (n *Node) aliveBackends() []string {
	var out []string
	for _, m := range n.Members() {
		if m.State == membership.Alive && m.Meta.HasRole(string(RoleBackend)) {
			out = append(out, m.Name)
		}
	}
	return out
}
