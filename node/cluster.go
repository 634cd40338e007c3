package node

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/rookery/rookery/actors/membership"
	"github.com/rookery/rookery/actors/pusher"
	"github.com/rookery/rookery/actors/slave"
	"github.com/rookery/rookery/listeners/admin"
	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/listeners/mupdate"
	"github.com/rookery/rookery/store/fault"
)

// cluster is what gossip tells this node about the others.
type cluster struct {
	mu      sync.Mutex
	members map[string]membership.Member
	master  string // MUPDATE address of the master in use
}

// startGossip joins the cluster and follows it: a backend or replica with
// no configured master follows the one gossip names.
func (n *Node) startGossip() error {
	var key []byte
	if n.cfg.ClusterKeyFile != "" {
		var err error
		if key, err = membership.LoadKey(n.cfg.ClusterKeyFile); err != nil {
			return err
		}
	}
	g, err := membership.Open(membership.Config{
		Bind:   n.cfg.GossipListen,
		Join:   n.cfg.Join,
		Key:    key,
		Meta:   n.meta(),
		Preset: membership.Preset(n.cfg.GossipPreset),
		Logger: n.log.With("role", "membership"),
	})
	if err != nil {
		return err
	}
	n.gossip, err = n.system.Root.SpawnNamed(g.Props(), "membership")
	if err != nil {
		g.Close()
		return fmt.Errorf("node: %w", err)
	}
	n.gossipAddr = g.Addr()
	n.gossipStarted(n.gossip)
	n.cluster = &cluster{members: make(map[string]membership.Member)}
	follower, err := n.system.Root.SpawnNamed(actor.PropsFromFunc(n.follow), "cluster-follower")
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.system.Root.Send(n.gossip, &membership.Subscribe{Subscriber: follower})
	return nil
}

// meta is what this node announces: its roles and where to reach it.
func (n *Node) meta() membership.Meta {
	m := membership.Meta{
		Cluster: n.cfg.ClusterName,
		Server:  n.cfg.ServerName,
		Version: Version,
		MUPDATE: n.MUPDATEAddr(),
		IMAP:    n.IMAPAddr(),
		POP3:    n.POP3Addr(),
		LMTP:    n.LMTPAddr(),
	}
	m.Storage, _ = n.storage()
	for _, r := range knownRoles {
		if n.cfg.Has(r) {
			m.Roles = append(m.Roles, string(r))
		}
	}
	return m
}

// follow receives membership events (it is the behaviour of a small
// actor) and points the pusher and replica at the master gossip names.
func (n *Node) follow(ctx actor.Context) {
	var m membership.Member
	switch ev := ctx.Message().(type) {
	case *membership.MemberJoined:
		m = ev.Member
	case *membership.MemberUpdated:
		m = ev.Member
	case *membership.MemberLeft:
		m = ev.Member
	default:
		return
	}
	master, changed := n.cluster.observe(m)
	if !changed || n.cfg.MUPDATEServer != "" || n.master != nil {
		return
	}
	n.log.Info("master found by gossip", "master", master)
	if n.pusher != nil {
		ctx.Send(n.pusher, &pusher.SetMaster{Addr: master})
	}
	if n.slave != nil {
		ctx.Send(n.slave, &slave.SetMaster{Addr: master})
	}
}

// observe records a member's news and says which master to follow now,
// and whether that is a change. A master that gossip suspects or loses
// is not a reason to switch: the MUPDATE connection decides whether it
// works (it fails and reconnects by itself), so a working connection is
// never dropped on a suspicion alone; only another master named by
// gossip moves the node.
func (c *cluster) observe(m membership.Member) (master string, changed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members[m.Name] = m
	master = c.pickMaster()
	if master == "" || master == c.master {
		return c.master, false
	}
	c.master = master
	return master, true
}

// pickMaster is the MUPDATE address of the alive member with the master
// role; with several (a handover), the one seen alive most recently. A
// master whose store failed is passed over: it takes no writes.
func (c *cluster) pickMaster() string {
	var best *membership.Member
	for _, m := range c.members {
		if m.State != membership.Alive || !m.Meta.HasRole(string(RoleMaster)) || m.Meta.MUPDATE == "" ||
			m.Meta.Storage == fault.Failed.String() {
			continue
		}
		if best == nil || m.Since.After(best.Since) {
			best = &m
		}
	}
	if best == nil {
		return ""
	}
	return best.Meta.MUPDATE
}

// masterAddr is the MUPDATE address of the master this node uses.
func (n *Node) masterAddr() string {
	switch {
	case n.master != nil:
		return n.MUPDATEAddr()
	case n.cfg.MUPDATEServer != "":
		return n.cfg.MUPDATEServer
	case n.cluster != nil:
		n.cluster.mu.Lock()
		defer n.cluster.mu.Unlock()
		return n.cluster.master
	}
	return ""
}

// backendIMAP is where clients reach a backend by its server name: gossip
// first, then Cyrus's convention (a "host:port" name is the address; a
// bare host uses the IMAP port).
func (n *Node) backendIMAP(server string) string {
	if server == n.cfg.ServerName && n.imapLn != nil {
		return n.IMAPAddr()
	}
	if n.cluster != nil {
		n.cluster.mu.Lock()
		m, ok := n.cluster.members[server]
		n.cluster.mu.Unlock()
		if ok && m.Meta.IMAP != "" {
			return m.Meta.IMAP
		}
	}
	if _, _, err := net.SplitHostPort(server); err == nil {
		return server
	}
	return net.JoinHostPort(server, "143")
}

// Members is the cluster as gossip shows it (nil without gossip).
func (n *Node) Members() []membership.Member {
	if n.cluster == nil {
		return nil
	}
	n.cluster.mu.Lock()
	defer n.cluster.mu.Unlock()
	out := make([]membership.Member, 0, len(n.cluster.members))
	for _, m := range n.cluster.members {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b membership.Member) int { return cmpString(a.Name, b.Name) })
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// GossipAddr is the gossip address ("" without gossip).
func (n *Node) GossipAddr() string { return n.gossipAddr }

// startAdmin serves /metrics, /status and /where.
func (n *Node) startAdmin(policyInternal string) error {
	ln, err := net.Listen("tcp", n.cfg.AdminListen)
	if err != nil {
		return fmt.Errorf("node: admin listener: %w", err)
	}
	n.adminLn = ln
	loc := &admin.Locator{
		Master:      n.masterAddr,
		Client:      n.masterClient(policyInternal),
		Local:       n.store.Get,
		BackendAddr: n.backendIMAP,
	}
	acfg := admin.Config{
		Metrics: n.metrics,
		Refresh: n.refreshMetrics,
		Status:  n.adminStatus,
		Where:   loc.Where,
		Logger:  n.log.With("listener", "admin"),
	}
	if n.cfg.Has(RoleBackend) {
		acfg.Mboxlist = n.Mboxlist
	}
	n.admin = admin.NewServer(acfg)
	n.serve(func() error { return n.admin.Serve(ln) }, "admin")
	return nil
}

// masterClient is how this node's tools log in to the master: with its
// internal identity on its own master, else with the replica/backend
// credentials.
func (n *Node) masterClient(internal string) mupdate.ClientConfig {
	if n.master != nil {
		return mupdate.ClientConfig{Username: auth.InternalUser, Password: internal, Timeout: n.cfg.ClientTimeout}
	}
	return mupdate.ClientConfig{Username: n.cfg.MUPDATEAuthname, Authzid: n.cfg.MUPDATEUsername,
		Password: n.cfg.MUPDATEPassword, Timeout: n.cfg.ClientTimeout}
}

func (n *Node) refreshMetrics() {
	m := n.metrics
	m.Mailboxes.Set(float64(n.store.Count()))
	m.Reservations.Set(float64(n.store.Reserved()))
	if n.mupdate != nil {
		m.MUPDATE.Connections.Set(float64(n.mupdate.Conns()))
		m.UpdateSubscribers.Set(float64(n.mupdate.Streams()))
	}
	// A node is a backend or a frontend: one of each pair serves.
	if n.imap != nil {
		m.IMAP.Connections.Set(float64(n.imap.Conns()))
	}
	if n.imapProxy != nil {
		m.IMAP.Connections.Set(float64(n.imapProxy.Conns()))
	}
	if n.pop3 != nil {
		m.POP3.Connections.Set(float64(n.pop3.Conns()))
	}
	if n.pop3Proxy != nil {
		m.POP3.Connections.Set(float64(n.pop3Proxy.Conns()))
	}
	if n.lmtp != nil {
		m.LMTP.Connections.Set(float64(n.lmtp.Conns()))
	}
	if n.lmtpProxy != nil {
		m.LMTP.Connections.Set(float64(n.lmtpProxy.Conns()))
	}
	if st, ok := n.ReplicaStatus(); ok {
		m.ReplicaConnected.Set(boolFloat(st.Connected))
		m.ReplicaAppliedSeq.Set(float64(st.AppliedSeq))
		m.ReplicaLag.Set(replicaLag(st).Seconds())
		if !st.LastSync.IsZero() {
			m.ReplicaLastSync.Set(float64(st.LastSync.Unix()))
		}
	}
}

// replicaLag is how stale the replica may be: nothing while it streams
// (changes arrive within milliseconds), the time since it lost its master
// otherwise.
func replicaLag(st slave.Status) time.Duration {
	if st.Connected {
		return 0
	}
	last := st.LastChange
	if st.LastSync.After(last) {
		last = st.LastSync
	}
	if last.IsZero() {
		return 0
	}
	return time.Since(last)
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (n *Node) adminStatus(ctx context.Context) (*admin.Status, error) {
	st := &admin.Status{
		Node:      n.cfg.ServerName,
		Cluster:   n.cfg.ClusterName,
		Version:   Version,
		Roles:     n.meta().Roles,
		Master:    n.masterAddr(),
		Mailboxes: n.store.Count(),
	}
	var cause error
	if st.Storage, cause = n.storage(); cause != nil {
		st.StorageError = cause.Error()
	}
	for _, m := range n.Members() {
		st.Members = append(st.Members, admin.Member{
			Name: m.Name, Addr: m.Addr, Roles: m.Meta.Roles, Health: string(m.State), Since: m.Since, Storage: m.Meta.Storage,
			MUPDATE: m.Meta.MUPDATE, IMAP: m.Meta.IMAP, POP3: m.Meta.POP3, LMTP: m.Meta.LMTP, Version: m.Meta.Version,
		})
	}
	if rs, ok := n.ReplicaStatus(); ok {
		st.Replica = &admin.Replica{
			Master: rs.Master, Connected: rs.Connected, AppliedSeq: rs.AppliedSeq,
			LagSeconds: replicaLag(rs).Seconds(), LastSync: rs.LastSync, LastError: rs.LastError,
		}
	}
	return st, nil
}

// AdminAddr is the admin listener's address ("" when off).
func (n *Node) AdminAddr() string {
	if n.adminLn == nil {
		return ""
	}
	return n.adminLn.Addr().String()
}
