// Package rookerytest boots Rookery topologies in this process on loopback
// (every listener on port 0) for tests and bench tools: one master+backend
// node, or a murder of a master, two backends and a frontend that find one
// another by gossip. Users get their INBOX created, and Start returns only
// once a client can log in and select it.
//
// It takes no testing.TB, so that bench tools can use it; tests register
// Close with t.Cleanup.
package rookerytest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/rookery/rookery/actors/membership"
	"github.com/rookery/rookery/listeners/imapproxy"
	"github.com/rookery/rookery/node"
	"github.com/rookery/rookery/store"
)

// Credentials every node of a topology knows.
const (
	AdminUser   = "admin"
	AdminPass   = "adminpw"
	MupdateUser = "mupdate" // backends and the frontend's replica at the master
	MupdatePass = "mupdatepw"
	ProxyUser   = "proxy" // the frontend logs in to backends as this user
	ProxyPass   = "proxypw"
)

// User is an end user; Start creates user.NAME on a backend.
type User struct{ Name, Pass string }

// Kind is a topology's shape.
type Kind int

const (
	// Backend is one node with the master and backend roles; clients talk
	// to the backend directly.
	Backend Kind = iota
	// Murder is a master, two backends and a frontend (with a replica of
	// the mailbox list), assembled by gossip; clients talk to the
	// frontend. Users' INBOXes go to the backends in turn.
	Murder
)

func (k Kind) String() string {
	if k == Murder {
		return "frontend"
	}
	return "backend"
}

// readyTimeout bounds the wait for a topology to serve its users.
const readyTimeout = 30 * time.Second

// Topology is running Rookery nodes.
type Topology struct {
	// IMAPAddr is where clients connect: the backend, or the frontend.
	IMAPAddr string
	// Backends are the backend nodes, in start order; Frontend is nil
	// for a Backend topology.
	Backends []*node.Node
	Frontend *node.Node
	nodes    []*node.Node // every node, in start order
	dir      string
}

// Start boots a topology of kind k with its data in a fresh folder under
// dir and creates every user's INBOX. On error nothing is left running.
// logger may be nil (discard).
func Start(ctx context.Context, k Kind, dir string, logger *slog.Logger, users ...User) (_ *Topology, err error) {
	base, err := os.MkdirTemp(dir, "rookery-"+k.String()+"-")
	if err != nil {
		return nil, fmt.Errorf("rookerytest: %w", err)
	}
	t := &Topology{dir: base}
	defer func() {
		if err != nil {
			err = errors.Join(err, t.Close())
		}
	}()
	usersFile := filepath.Join(base, "users")
	var b strings.Builder
	for _, u := range append([]User{{AdminUser, AdminPass}, {MupdateUser, MupdatePass}, {ProxyUser, ProxyPass}}, users...) {
		fmt.Fprintf(&b, "%s:{PLAIN}%s\n", u.Name, u.Pass)
	}
	if err := os.WriteFile(usersFile, []byte(b.String()), 0o600); err != nil {
		return nil, fmt.Errorf("rookerytest: %w", err)
	}
	config := func(name string, roles ...node.Role) node.Config {
		c := node.DefaultConfig()
		c.ServerName = name
		c.DataDir = filepath.Join(base, name)
		c.Roles = roles
		c.UsersFile = usersFile
		c.Admins = []string{AdminUser, MupdateUser}
		c.ProxyServers = []string{ProxyUser}
		c.MUPDATEAuthname, c.MUPDATEPassword = MupdateUser, MupdatePass
		c.MUPDATERetryDelay = 300 * time.Millisecond
		c.FailedLoginPause = 0
		c.IMAPListen = "127.0.0.1:0"
		c.MUPDATEListen, c.AdminListen, c.POP3Listen, c.LMTPListen = "", "", "", ""
		return c
	}

	if k == Backend {
		c := config("be1.test", node.RoleMaster, node.RoleBackend)
		c.MUPDATEListen = "127.0.0.1:0"
		n, err := t.start(c, logger)
		if err != nil {
			return nil, err
		}
		t.Backends, t.IMAPAddr = []*node.Node{n}, n.IMAPAddr()
		if err := t.createInboxes(ctx, users); err != nil {
			return nil, err
		}
		return t, nil
	}

	gossip := func(c *node.Config, join string) {
		c.GossipListen, c.GossipPreset = "127.0.0.1:0", "local"
		if join != "" {
			c.Join = []string{join}
		}
	}
	mc := config("master.test", node.RoleMaster)
	mc.IMAPListen, mc.MUPDATEListen = "", "127.0.0.1:0"
	gossip(&mc, "")
	m, err := t.start(mc, logger)
	if err != nil {
		return nil, err
	}
	backends := []string{"be1.test", "be2.test"}
	for _, name := range backends {
		c := config(name, node.RoleBackend)
		gossip(&c, m.GossipAddr())
		n, err := t.start(c, logger)
		if err != nil {
			return nil, err
		}
		t.Backends = append(t.Backends, n)
	}
	fc := config("fe.test", node.RoleFrontend, node.RoleReplica)
	gossip(&fc, m.GossipAddr())
	fc.ProxyAuthname, fc.ProxyPassword = ProxyUser, ProxyPass
	fc.AllowPlaintext = true
	// Its backends are all Rookery ones.
	fc.FrontendExtensions = imapproxy.RookeryPassthrough
	if t.Frontend, err = t.start(fc, logger); err != nil {
		return nil, err
	}
	t.IMAPAddr = t.Frontend.IMAPAddr()
	if err := t.createInboxes(ctx, users); err != nil {
		return nil, err
	}
	// The frontend serves a user once its replica has the INBOX and
	// gossip shows the backend alive.
	for i, u := range users {
		be := backends[i%len(backends)]
		err := poll(ctx, "the frontend to serve "+u.Name, func() error {
			// Active, not only found: a backend's CREATE reserves the
			// name before it activates it.
			if e, found, err := t.Frontend.Store().Get("user." + u.Name); err != nil || !found || e.Kind != store.Active {
				return fmt.Errorf("user.%s not active in the frontend's replica (%v)", u.Name, err)
			}
			for _, mem := range t.Frontend.Members() {
				if mem.Name == be && mem.State == membership.Alive {
					return nil
				}
			}
			return errors.New("backend not alive in the frontend's gossip")
		})
		if err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (t *Topology) start(c node.Config, logger *slog.Logger) (*node.Node, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("rookerytest: %w", err)
	}
	n, err := node.Start(c, logger)
	if err != nil {
		return nil, fmt.Errorf("rookerytest: starting %s: %w", c.ServerName, err)
	}
	t.nodes = append(t.nodes, n)
	return n, nil
}

// createInboxes creates user.NAME for each user on the backends in turn,
// as the admin, retrying while the backend has no master yet.
func (t *Topology) createInboxes(ctx context.Context, users []User) error {
	for i, u := range users {
		be := t.Backends[i%len(t.Backends)]
		err := poll(ctx, "CREATE user."+u.Name, func() error {
			c, err := imapclient.DialInsecure(be.IMAPAddr(), nil)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.Login(AdminUser, AdminPass).Wait(); err != nil {
				return err
			}
			return c.Create("user."+u.Name, nil).Wait()
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// poll retries f until it succeeds, ctx ends or readyTimeout passes.
func poll(ctx context.Context, what string, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("rookerytest: waiting for %s: %w (last: %w)", what, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// Close stops every node, the last started first, and removes their data.
func (t *Topology) Close() error {
	var errs []error
	for i := len(t.nodes) - 1; i >= 0; i-- {
		if err := t.nodes[i].Close(); err != nil {
			errs = append(errs, fmt.Errorf("rookerytest: %w", err))
		}
	}
	t.nodes = nil
	if err := os.RemoveAll(t.dir); err != nil {
		errs = append(errs, fmt.Errorf("rookerytest: %w", err))
	}
	return errors.Join(errs...)
}
