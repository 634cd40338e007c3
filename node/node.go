// Package node wires a node's pieces together: it opens the store, spawns
// the actors of the configured roles and starts their listeners.
package node

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/rookery/rookery/actors/mailboxdb"
	"github.com/rookery/rookery/actors/master"
	"github.com/rookery/rookery/actors/membership"
	"github.com/rookery/rookery/actors/slave"
	"github.com/rookery/rookery/listeners/admin"
	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/listeners/imap"
	"github.com/rookery/rookery/listeners/imapproxy"
	"github.com/rookery/rookery/listeners/lmtp"
	"github.com/rookery/rookery/listeners/mupdate"
	"github.com/rookery/rookery/listeners/pop3"
	"github.com/rookery/rookery/store"
	"github.com/rookery/rookery/store/mailstore"
)

// Version is what the node reports in greetings, --version and
// rookery_build_info. A variable so that a release build can stamp it:
// go build -ldflags "-X github.com/rookery/rookery/node.Version=1.2.3".
var Version = "0.1.0"

// askTimeout bounds how long a listener waits on an actor; a synced
// Pebble commit takes milliseconds, so it only fires on a wedged node.
const askTimeout = 30 * time.Second

// Node is a running node.
type Node struct {
	cfg    Config
	log    *slog.Logger
	system *actor.ActorSystem
	store  *store.DB
	db     *actor.PID
	master *actor.PID
	slave  *actor.PID
	// mupdateClientTLS is what this node's MUPDATE clients use for
	// STARTTLS (nil: plain).
	mupdateClientTLS *tls.Config

	pusher *actor.PID

	mupdate   *mupdate.Server
	mupdateLn net.Listener
	mail      *mailstore.Store
	imap      *imap.Server
	imapLn    net.Listener
	pop3      *pop3.Server
	pop3Ln    net.Listener
	lmtp      *lmtp.Server
	lmtpLn    net.Listener
	imapsLn   net.Listener
	pop3sLn   net.Listener
	imapProxy *imapproxy.Server
	pop3Proxy *pop3.Proxy
	lmtpProxy *lmtp.Proxy
	// servers counts listener goroutines, so Close can wait for them.
	servers sync.WaitGroup

	serverTLS  *tls.Config
	certs      *certStore // what serverTLS serves; a reload swaps it
	gossip     *actor.PID
	gossipAddr string
	cluster    *cluster
	admin      *admin.Server
	adminLn    net.Listener
	metrics    *admin.Metrics

	// users is the users file every listener checks passwords against;
	// a reload swaps its content under them.
	users    *auth.Users
	stopPoll chan struct{}
	// throttle counts failed logins across every mail listener.
	throttle *auth.Throttle

	closeOnce sync.Once
	closeErr  error

	health health
}

// Start brings a node up with cfg, which must have passed Validate.
func Start(cfg Config, logger *slog.Logger) (*Node, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("node", cfg.ServerName)
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	// The listeners count into these from their start; /metrics serves
	// them when admin_listen is set.
	n := &Node{cfg: cfg, log: logger, metrics: admin.NewMetrics(admin.Roles{
		Version:  Version,
		Master:   cfg.Has(RoleMaster),
		Replica:  cfg.Has(RoleReplica),
		MUPDATE:  cfg.MUPDATEListen != "" && (cfg.Has(RoleMaster) || cfg.Has(RoleReplica)),
		Mail:     cfg.Has(RoleBackend) || cfg.Has(RoleFrontend),
		Frontend: cfg.Has(RoleFrontend),
	}), stopPoll: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			n.Close()
		}
	}()
	n.checkFileLimit()

	policy, err := n.loadPolicy()
	if err != nil {
		return nil, err
	}
	n.users = policy.Users
	n.throttle = auth.NewThrottle(cfg.LoginThrottleFailures, cfg.LoginThrottleWindow, cfg.LoginThrottleExempt, logger.With("component", "auth"))
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	policy.Internal = hex.EncodeToString(secret)
	n.store, err = store.Open(filepath.Join(cfg.DataDir, "mailboxes"), store.Options{
		Logger:    logger.With("component", "pebble"),
		LogRetain: cfg.LogRetain,
		OnFault:   n.storageChanged("mailboxes"),
	})
	if err != nil {
		return nil, err
	}
	n.storeOpened("mailboxes")
	n.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(quietHandler{logger.With("component", "protoactor").Handler()})
	}))
	n.db, err = n.system.Root.SpawnNamed(mailboxdb.Props(mailboxdb.Config{
		Store: n.store, Logger: logger.With("role", "mailbox-db"),
	}), "mailbox-db")
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}

	if cfg.Has(RoleMaster) {
		n.master, err = n.system.Root.SpawnNamed(master.Props(master.Config{
			DB: n.db, Conflict: n.metrics.Conflicts.Inc, Logger: logger.With("role", "mupdate-master"),
		}), "mupdate-master")
		if err != nil {
			return nil, fmt.Errorf("node: %w", err)
		}
	}
	clientTLS, err := n.clientTLS()
	if err != nil {
		return nil, err
	}
	n.mupdateClientTLS = clientTLS
	if cfg.Has(RoleReplica) {
		n.slave, err = n.system.Root.SpawnNamed(slave.Props(slave.Config{
			Master: cfg.MUPDATEServer,
			Client: mupdate.ClientConfig{
				TLS:      clientTLS,
				Username: cfg.MUPDATEAuthname,
				Authzid:  cfg.MUPDATEUsername,
				Password: cfg.MUPDATEPassword,
				Timeout:  cfg.ClientTimeout,
				Logger:   logger.With("role", "mupdate-slave"),
			},
			DB:         n.db,
			Store:      n.store,
			RetryDelay: cfg.MUPDATERetryDelay,
			Logger:     logger.With("role", "mupdate-slave"),
		}), "mupdate-slave")
		if err != nil {
			return nil, fmt.Errorf("node: %w", err)
		}
	}
	// Only a list's owners serve it: a backend's MUPDATE is its master's.
	if cfg.MUPDATEListen != "" && (cfg.Has(RoleMaster) || cfg.Has(RoleReplica)) {
		if err := n.startMUPDATE(policy); err != nil {
			return nil, err
		}
	}
	if cfg.Has(RoleBackend) {
		if err := n.startBackend(policy.Users, policy.Internal); err != nil {
			return nil, err
		}
	}
	if cfg.Has(RoleFrontend) {
		if err := n.startFrontend(policy.Users); err != nil {
			return nil, err
		}
	}
	if cfg.GossipListen != "" {
		if err := n.startGossip(); err != nil {
			return nil, err
		}
	}
	if cfg.AdminListen != "" {
		if err := n.startAdmin(policy.Internal); err != nil {
			return nil, err
		}
	}
	if cfg.UsersPoll > 0 {
		n.servers.Add(1)
		go n.pollUsers(cfg.UsersPoll)
	}
	logger.Info("node started", "roles", cfg.Roles, "data", cfg.DataDir,
		"mupdate", n.MUPDATEAddr(), "imap", n.IMAPAddr(), "pop3", n.POP3Addr(), "lmtp", n.LMTPAddr(), "imaps", n.IMAPSAddr(), "pop3s", n.POP3SAddr(), "gossip", n.gossipAddr, "admin", n.AdminAddr(), "mailboxes", n.store.Count(), "seq", n.store.LastSeq())
	ok = true
	return n, nil
}

func (n *Node) startMUPDATE(policy *auth.Policy) error {
	ln, err := net.Listen("tcp", n.cfg.MUPDATEListen)
	if err != nil {
		return fmt.Errorf("node: mupdate listener: %w", err)
	}
	n.mupdateLn = ln
	scfg := mupdate.ServerConfig{
		ServerName: n.cfg.ServerName,
		Version:    Version,
		Mode:       n.mupdateMode(),
		ReadOnly:   n.master == nil,
		Login: func(authzid, authcid, password string) (string, error) {
			return policy.AdminLogin(authzid, authcid, password)
		},
		Store:            n.store,
		Watch:            n.watch,
		Limits:           mupdate.Limits{MaxString: n.cfg.MaxLiteral},
		IdleTimeout:      n.cfg.MUPDATEIdleTimeout,
		LoginTimeout:     n.cfg.LoginTimeout,
		WriteTimeout:     n.cfg.MUPDATEWriteTimeout,
		MaxConns:         n.cfg.MUPDATEConnectionsMax,
		FailedLoginPause: n.cfg.FailedLoginPause,
		Plaintext:        n.plaintextAllowed,
		Metrics:          n.listenerMetrics("mupdate", "mupdate", n.metrics.MUPDATE),
		Logger:           n.log.With("listener", "mupdate"),
	}
	if n.cfg.MUPDATETLS {
		tlsConf, err := n.tlsConfig()
		if err != nil {
			return err
		}
		scfg.TLS = tlsConf
	}
	if n.master != nil {
		scfg.Write = n.write
	}
	n.mupdate = mupdate.NewServer(scfg)
	n.serve(func() error { return n.mupdate.Serve(ln) }, "mupdate")
	return nil
}

// listen opens addr (nothing when empty), wrapping it in TLS when tlsConf
// is given (implicit TLS ports), and serves it.
func (n *Node) listen(addr string, tlsConf *tls.Config, name string, ln *net.Listener, serve func(net.Listener) error) error {
	if addr == "" {
		return nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("node: %s listener: %w", name, err)
	}
	*ln = l
	if tlsConf != nil {
		l = tls.NewListener(l, tlsConf)
	}
	n.serve(func() error { return serve(l) }, name)
	return nil
}

// serve runs a listener's accept loop until Close.
func (n *Node) serve(run func() error, name string) {
	n.servers.Add(1)
	go func() {
		defer n.servers.Done()
		if err := run(); err != nil {
			n.log.Error("listener stopped", "listener", name, "err", err)
		}
	}()
}

// mupdateMode is the greeting's last field: Cyrus's slaves name their
// master there.
func (n *Node) mupdateMode() string {
	if n.master == nil && n.cfg.MUPDATEServer != "" {
		return "mupdate://" + n.cfg.MUPDATEServer
	}
	return "(master)"
}

// ReplicaStatus is the replica role's state; ok is false on a node
// without that role.
func (n *Node) ReplicaStatus() (st slave.Status, ok bool) {
	if n.slave == nil {
		return st, false
	}
	res, err := n.system.Root.RequestFuture(n.slave, &slave.GetStatus{}, askTimeout).Result()
	if err != nil {
		return st, false
	}
	return *res.(*slave.Status), true
}

// write sends an MUPDATE write to the master actor and returns a wait for
// its outcome, with the master's refusals turned into NO texts.
func (n *Node) write(op mupdate.Op) func() error {
	var msg any
	switch op.Cmd {
	case "ACTIVATE":
		msg = &master.Activate{Name: op.Name, Location: op.Location, ACL: op.ACL}
	case "RESERVE":
		msg = &master.Reserve{Name: op.Name, Location: op.Location}
	case "DEACTIVATE":
		msg = &master.Deactivate{Name: op.Name, Location: op.Location}
	case "DELETE":
		msg = &master.Delete{Name: op.Name}
	default:
		return func() error { return fmt.Errorf("node: unknown write %q", op.Cmd) }
	}
	f := n.system.Root.RequestFuture(n.master, msg, askTimeout)
	return func() error {
		res, err := f.Result()
		if err != nil {
			return fmt.Errorf("node: mupdate-master: %w", err)
		}
		reply, ok := res.(*mailboxdb.UpdateReply)
		if !ok {
			return fmt.Errorf("node: mupdate-master: unexpected reply %T", res)
		}
		for _, refusal := range []error{master.ErrExists, master.ErrNotActive, master.ErrNoMailbox, master.ErrBadName} {
			if errors.Is(reply.Err, refusal) {
				return &mupdate.Refusal{Text: refusal.Error()}
			}
		}
		// The store logged its fault once; each write it refuses is a NO.
		switch {
		case errors.Is(reply.Err, store.ErrNoSpace):
			return &mupdate.Refusal{Text: "mailbox list unavailable: disk full"}
		case errors.Is(reply.Err, store.ErrFailed):
			return &mupdate.Refusal{Text: "mailbox list unavailable: storage failed"}
		}
		return reply.Err
	}
}

func (n *Node) watch(notify func(uint64)) func() {
	res, err := n.system.Root.RequestFuture(n.db, &mailboxdb.Watch{Notify: notify}, askTimeout).Result()
	if err != nil {
		n.log.Error("watching the mailbox list failed", "err", err)
		return func() {}
	}
	id := res.(*mailboxdb.WatchReply).ID
	return func() { n.system.Root.Send(n.db, &mailboxdb.Unwatch{ID: id}) }
}

// loadPolicy loads the users file. On a node's first start with no users
// file configured, it writes DATA/users with a random admin password so
// the all-in-one default works out of the box without a shared secret.
func (n *Node) loadPolicy() (*auth.Policy, error) {
	path := n.cfg.UsersPath()
	admins := n.cfg.Admins
	if n.cfg.UsersFile == "" {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			pw := make([]byte, 12)
			_, _ = rand.Read(pw)
			line := fmt.Sprintf("# created by rookery on first start\nadmin:{PLAIN}%s\n", hex.EncodeToString(pw))
			if err := os.WriteFile(path, []byte(line), 0o600); err != nil {
				return nil, fmt.Errorf("node: creating %s: %w", path, err)
			}
			n.log.Warn("created a users file with a random admin password; read it there", "file", path)
		}
		if len(admins) == 0 {
			admins = []string{"admin"}
			n.cfg.Admins = admins
		}
	}
	users, err := auth.LoadUsers(path)
	if err != nil {
		return nil, err
	}
	if len(admins) == 0 {
		n.log.Warn("no admins configured: nobody can authenticate to MUPDATE", "hint", "set admins: in the config file or --admins")
	}
	return &auth.Policy{Users: users, Admins: admins}, nil
}

// MUPDATEAddr is the MUPDATE listener's address ("" when off).
func (n *Node) MUPDATEAddr() string {
	if n.mupdateLn == nil {
		return ""
	}
	return n.mupdateLn.Addr().String()
}

// Store is the node's mailbox list, for read-only use (tests, tools).
func (n *Node) Store() *store.DB { return n.store }

// Close stops listeners first, so no session is cut off mid-write by the
// store closing under it, then the actors, then the store. Calling it
// again returns the first call's result.
func (n *Node) Close() error {
	n.closeOnce.Do(func() { n.closeErr = n.close() })
	return n.closeErr
}

func (n *Node) close() error {
	// Tell the cluster first, then mail sessions (they use the pusher),
	// then the actors that talk to other servers, then the MUPDATE
	// sessions, then the list's owners.
	if n.gossip != nil {
		_, _ = n.system.Root.RequestFuture(n.gossip, &membership.Leave{Timeout: time.Second}, 2*time.Second).Result()
		n.poison(n.gossip)
	}
	if n.admin != nil {
		_ = n.admin.Close()
	}
	if n.adminLn != nil {
		_ = n.adminLn.Close()
	}
	if n.imap != nil {
		_ = n.imap.Close()
	}
	if n.pop3 != nil {
		_ = n.pop3.Close()
	}
	if n.lmtp != nil {
		_ = n.lmtp.Close()
	}
	if n.imapProxy != nil {
		_ = n.imapProxy.Close()
	}
	if n.pop3Proxy != nil {
		_ = n.pop3Proxy.Close()
	}
	if n.lmtpProxy != nil {
		_ = n.lmtpProxy.Close()
	}
	for _, l := range []net.Listener{n.imapLn, n.pop3Ln, n.lmtpLn, n.imapsLn, n.pop3sLn} {
		if l != nil {
			_ = l.Close()
		}
	}
	close(n.stopPoll)
	n.poison(n.pusher, n.slave)
	if n.mupdate != nil {
		_ = n.mupdate.Close()
	}
	if n.mupdateLn != nil {
		_ = n.mupdateLn.Close()
	}
	n.servers.Wait()
	n.poison(n.master, n.db)
	if n.system != nil {
		n.system.Shutdown()
	}
	var err error
	if n.mail != nil {
		err = n.mail.Close()
	}
	if n.store != nil {
		err = errors.Join(err, n.store.Close())
	}
	n.log.Info("node stopped")
	return err
}

// poison stops actors and waits until they have.
func (n *Node) poison(pids ...*actor.PID) {
	for _, pid := range pids {
		if pid != nil {
			_ = n.system.Root.PoisonFuture(pid).Wait()
		}
	}
}

// quietHandler keeps protoactor-go's chatter (it logs every spawn and stop
// at Info) below Warn out of the node's log.
type quietHandler struct{ slog.Handler }

func (h quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}

func (h quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(as)}
}

func (h quietHandler) WithGroup(g string) slog.Handler {
	return quietHandler{h.Handler.WithGroup(g)}
}
