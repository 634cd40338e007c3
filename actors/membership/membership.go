// Package membership is the membership actor: it runs this node's member
// of the cluster's gossip (hashicorp/memberlist), announces the node's
// metadata (cluster, server name, roles, advertised addresses, version)
// and tells subscribers who joined, changed, left or failed.
package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/hashicorp/memberlist"
)

// Preset is a set of gossip timings for one kind of network.
type Preset string

// The presets. The zero value means LAN.
const (
	// LAN suits nodes on one network (memberlist's own LAN defaults): a
	// dead member is noticed within a few seconds.
	LAN Preset = "lan"
	// WAN tolerates slow, lossy links; failures take longer to notice.
	WAN Preset = "wan"
	// Local is for nodes on one machine (loopback, tests): probes every
	// 200ms, so a dead member is noticed in about a second.
	Local Preset = "local"
)

// Config is what the actor needs.
type Config struct {
	// Bind is the gossip address, host:port, for both UDP and TCP; port 0
	// picks a free port (tests). An empty host binds every interface.
	Bind string
	// Advertise is the ip:port members reach this node at, when it is
	// not Bind's (NAT, or Bind on every interface); empty uses Bind's.
	Advertise string
	// Join lists members to join, host:port; tried until one answers, so
	// nodes may start in any order. This node's own address is skipped,
	// so every node can be given the same list.
	Join []string
	// Key is the cluster key (16, 24 or 32 bytes, see LoadKey). Gossip is
	// then encrypted and a node without the key cannot join; nil gossips
	// in clear text.
	Key []byte
	// Meta is what this node announces. Meta.Server is its member name
	// and Meta.Cluster the cluster it belongs to.
	Meta Meta
	// Preset picks the gossip timings; empty means LAN.
	Preset Preset
	// Logger gets the actor's lines and memberlist's (its DEBUG lines at
	// Debug, its ERR lines, which are about peers, at Warn); nil discards.
	Logger *slog.Logger
}

// Subscribe registers Subscriber for membership events. Sent by any actor
// that follows the cluster; no reply. The subscriber first gets a
// MemberJoined for every current member, then every change as it happens,
// until Unsubscribe or its own stop.
type Subscribe struct {
	Subscriber *actor.PID
}

// Unsubscribe ends a Subscribe. No reply.
type Unsubscribe struct {
	Subscriber *actor.PID
}

// GetMembers asks for the members known, including failed and departed
// ones until they return. Sent by the node (status pages); reply
// *MembersReply.
type GetMembers struct{}

// MembersReply answers GetMembers, sorted by name.
type MembersReply struct {
	Members []Member
}

// UpdateMeta replaces this node's metadata, for instance when its roles
// change; the cluster and server name cannot change. Sent by the node;
// reply *UpdateMetaReply once the new metadata is in effect locally (it
// reaches the other members by gossip shortly after).
type UpdateMeta struct {
	Meta Meta
}

// UpdateMetaReply answers UpdateMeta.
type UpdateMetaReply struct {
	Err error
}

// Leave announces that this node is leaving on purpose, so members record
// it as left rather than failed. Sent by the node before it stops; reply
// *LeaveReply after the announcement went out or Timeout passed. Stopping
// the actor without Leave looks like a crash to the others.
type Leave struct {
	Timeout time.Duration
}

// LeaveReply answers Leave.
type LeaveReply struct {
	Err error
}

// MemberJoined tells a subscriber that a member joined (or came back).
type MemberJoined struct{ Member Member }

// MemberUpdated tells a subscriber that a member's metadata changed, or
// that it announced its departure (State Leaving).
type MemberUpdated struct{ Member Member }

// MemberLeft tells a subscriber that a member is gone; Member.State says
// whether it left on purpose (Left) or failed (Failed).
type MemberLeft struct{ Member Member }

// State is a member's health as seen from this node.
type State string

// The states a member can be in.
const (
	Alive   State = "alive"
	Leaving State = "leaving" // announced its departure, still answering
	Left    State = "left"
	Failed  State = "failed" // stopped answering probes
)

// Member is one node of the cluster.
type Member struct {
	// Name is the member name, its server name.
	Name string
	// Addr is its gossip address, ip:port.
	Addr  string
	Meta  Meta
	State State
	// Since is when this node saw it enter State.
	Since time.Time
}

// Gossip is this node's member of the cluster: bound and announced, but
// joining nobody until the actor made by Props runs.
type Gossip struct {
	cfg     Config
	ml      *memberlist.Memberlist
	d       *delegates
	backoff [2]time.Duration // join retries: first and longest wait
	once    sync.Once
	err     error
}

// Open binds cfg.Bind and creates the member list. Spawn Props to run it
// (the actor then owns it); Close it instead if it is never spawned.
func Open(cfg Config) (*Gossip, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	mc, backoff, err := cfg.Preset.config()
	if err != nil {
		return nil, err
	}
	if cfg.Meta.Server == "" {
		return nil, errors.New("membership: Meta.Server (the member name) is empty")
	}
	if len(cfg.Meta.Cluster) > memberlist.LabelMaxSize {
		return nil, fmt.Errorf("membership: cluster name is over %d bytes", memberlist.LabelMaxSize)
	}
	if cfg.Key != nil && !validKeyLen(len(cfg.Key)) {
		return nil, fmt.Errorf("membership: cluster key is %d bytes, want 16, 24 or 32", len(cfg.Key))
	}
	meta, err := encodeMeta(cfg.Meta, false)
	if err != nil {
		return nil, err
	}
	if mc.BindAddr, mc.BindPort, err = resolve(cfg.Bind, true); err != nil {
		return nil, fmt.Errorf("membership: bind address: %w", err)
	}
	if cfg.Advertise != "" {
		if mc.AdvertiseAddr, mc.AdvertisePort, err = resolve(cfg.Advertise, false); err != nil {
			return nil, fmt.Errorf("membership: advertise address: %w", err)
		}
	}
	mc.Name = cfg.Meta.Server
	// The label keeps clusters sharing a network apart at the packet
	// level (and is authenticated when gossip is encrypted).
	mc.Label = cfg.Meta.Cluster
	mc.SecretKey = slices.Clone(cfg.Key)
	mc.Logger = newStdLogger(cfg.Logger.With("component", "memberlist"))
	d := &delegates{cluster: cfg.Meta.Cluster}
	d.meta.Store(&meta)
	mc.Delegate, mc.Events, mc.Alive = d, d, d
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("membership: %w", err)
	}
	return &Gossip{cfg: cfg, ml: ml, d: d, backoff: backoff}, nil
}

// resolve turns host:port into the IP and port memberlist wants.
func resolve(hostport string, bind bool) (string, int, error) {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 || (!bind && port == 0) {
		return "", 0, fmt.Errorf("%q: bad port", hostport)
	}
	if host == "" && bind {
		return "0.0.0.0", port, nil
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.String(), port, nil
	}
	ips, err := net.DefaultResolver.LookupIP(context.Background(), "ip", host)
	if err != nil {
		return "", 0, err
	}
	// Prefer IPv4: it is what "localhost" means to most operators.
	slices.SortStableFunc(ips, func(a, b net.IP) int {
		if (a.To4() != nil) == (b.To4() != nil) {
			return 0
		}
		if a.To4() != nil {
			return -1
		}
		return 1
	})
	return ips[0].String(), port, nil
}

// Addr is the gossip address members reach this node at, ip:port (with
// the port picked when Bind asked for port 0).
func (g *Gossip) Addr() string { return g.ml.LocalNode().Address() }

// Close stops gossiping without announcing a departure.
func (g *Gossip) Close() error {
	g.once.Do(func() {
		g.d.detach()
		if err := g.ml.Shutdown(); err != nil {
			g.err = fmt.Errorf("membership: %w", err)
		}
	})
	return g.err
}

// Props makes the actor's props. Spawn it once.
func (g *Gossip) Props() *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		return &membership{
			g:       g,
			log:     g.cfg.Logger,
			meta:    g.cfg.Meta,
			members: make(map[string]*Member),
			subs:    make(map[string]*actor.PID),
		}
	})
}

// config is the preset's memberlist configuration and join backoff.
func (p Preset) config() (*memberlist.Config, [2]time.Duration, error) {
	switch p {
	case LAN, "":
		c := memberlist.DefaultLANConfig()
		// Without this a node restarted on another address (a new
		// container, DHCP) is refused until its old self is forgotten.
		c.DeadNodeReclaimTime = 10 * time.Second
		return c, [2]time.Duration{500 * time.Millisecond, 30 * time.Second}, nil
	case WAN:
		c := memberlist.DefaultWANConfig()
		c.DeadNodeReclaimTime = 10 * time.Second
		return c, [2]time.Duration{time.Second, time.Minute}, nil
	case Local:
		c := memberlist.DefaultLocalConfig()
		// A probe every 200ms; a member that misses one is suspect and,
		// without a refutation, dead 3 probe intervals later (up to twice
		// that while fewer peers than needed confirm).
		c.ProbeInterval = 200 * time.Millisecond
		c.ProbeTimeout = 100 * time.Millisecond
		c.SuspicionMult = 3
		c.SuspicionMaxTimeoutMult = 2
		c.AwarenessMaxMultiplier = 4
		c.GossipInterval = 50 * time.Millisecond
		// In a cluster this small a broadcast sent twice (memberlist's
		// local default) can go to the same member both times, leaving
		// the others to learn of it at the next full state exchange.
		c.RetransmitMult = 4
		c.PushPullInterval = 2 * time.Second
		c.GossipToTheDeadTime = 2 * time.Second
		// A node restarted on another port (port 0) takes back its name
		// as soon as it is known to be dead.
		c.DeadNodeReclaimTime = time.Nanosecond
		return c, [2]time.Duration{50 * time.Millisecond, time.Second}, nil
	}
	return nil, [2]time.Duration{}, fmt.Errorf("membership: unknown preset %q (want lan, wan or local)", p)
}

// delegates are memberlist's callbacks. They run on memberlist's
// goroutines, some under its locks: they must not block and must not call
// back into memberlist, so they only read the current metadata and send
// events to the actor.
type delegates struct {
	cluster string
	meta    atomic.Pointer[[]byte]

	mu      sync.Mutex
	root    *actor.RootContext
	self    *actor.PID
	pending []*nodeEvent // events from before the actor started
	closed  bool
}

// nodeEvent is a memberlist event, sent by the delegates to the actor.
type nodeEvent struct {
	kind    eventKind
	name    string
	addr    string
	meta    Meta
	leaving bool
}

type eventKind int

const (
	joined eventKind = iota
	updated
	left
)

// attach starts delivering events to the actor, those held back first.
func (d *delegates) attach(root *actor.RootContext, self *actor.PID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.root, d.self = root, self
	for _, ev := range d.pending {
		root.Send(self, ev)
	}
	d.pending = nil
}

func (d *delegates) detach() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.root, d.self, d.pending, d.closed = nil, nil, nil, true
}

func (d *delegates) send(kind eventKind, n *memberlist.Node) {
	// Meta was checked by NotifyAlive before memberlist took the node in.
	meta, leaving, _ := decodeMeta(n.Meta)
	ev := &nodeEvent{kind: kind, name: n.Name, addr: n.Address(), meta: meta, leaving: leaving}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.closed:
	case d.self == nil:
		d.pending = append(d.pending, ev)
	default:
		// An actor mailbox is unbounded: Send never blocks.
		d.root.Send(d.self, ev)
	}
}

// NodeMeta implements memberlist.Delegate.
func (d *delegates) NodeMeta(limit int) []byte { return *d.meta.Load() }

// NotifyMsg implements memberlist.Delegate; members send no messages.
func (d *delegates) NotifyMsg([]byte) {}

// GetBroadcasts implements memberlist.Delegate.
func (d *delegates) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState implements memberlist.Delegate.
func (d *delegates) LocalState(join bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate.
func (d *delegates) MergeRemoteState(buf []byte, join bool) {}

// NotifyJoin implements memberlist.EventDelegate.
func (d *delegates) NotifyJoin(n *memberlist.Node) { d.send(joined, n) }

// NotifyUpdate implements memberlist.EventDelegate.
func (d *delegates) NotifyUpdate(n *memberlist.Node) { d.send(updated, n) }

// NotifyLeave implements memberlist.EventDelegate; memberlist calls it for
// failures and departures alike.
func (d *delegates) NotifyLeave(n *memberlist.Node) { d.send(left, n) }

// NotifyAlive implements memberlist.AliveDelegate: a node whose metadata
// does not parse or names another cluster never becomes a member.
func (d *delegates) NotifyAlive(n *memberlist.Node) error {
	meta, _, err := decodeMeta(n.Meta)
	if err != nil {
		return err
	}
	if meta.Cluster != d.cluster {
		return fmt.Errorf("membership: %s is in cluster %q, not %q", n.Name, meta.Cluster, d.cluster)
	}
	return nil
}

// membership is the actor.
type membership struct {
	g       *Gossip
	log     *slog.Logger
	meta    Meta
	leaving bool
	members map[string]*Member
	subs    map[string]*actor.PID
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func (a *membership) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.g.d.attach(ctx.ActorSystem().Root, ctx.Self())
		c, cancel := context.WithCancel(context.Background())
		a.cancel = cancel
		if join := a.joinList(); len(join) > 0 {
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				a.join(c, join)
			}()
		}
	case *nodeEvent:
		a.apply(ctx, m)
	case *Subscribe:
		a.subs[m.Subscriber.String()] = m.Subscriber
		ctx.Watch(m.Subscriber)
		for _, name := range a.names() {
			if mem := a.members[name]; mem.State == Alive || mem.State == Leaving {
				ctx.Send(m.Subscriber, &MemberJoined{Member: *mem})
			}
		}
	case *Unsubscribe:
		delete(a.subs, m.Subscriber.String())
		ctx.Unwatch(m.Subscriber)
	case *actor.Terminated:
		delete(a.subs, m.Who.String())
	case *GetMembers:
		out := make([]Member, 0, len(a.members))
		for _, name := range a.names() {
			out = append(out, *a.members[name])
		}
		ctx.Respond(&MembersReply{Members: out})
	case *UpdateMeta:
		ctx.Respond(&UpdateMetaReply{Err: a.updateMeta(m.Meta)})
	case *Leave:
		a.leave(ctx, m)
	case *actor.Stopping:
		if a.cancel != nil {
			a.cancel()
		}
		_ = a.g.Close()
		a.wg.Wait()
	}
}

// joinList is Config.Join without this node's own address.
func (a *membership) joinList() []string {
	self := a.g.Addr()
	var out []string
	for _, addr := range a.g.cfg.Join {
		if addr != self && addr != a.g.cfg.Bind {
			out = append(out, addr)
		}
	}
	return out
}

// join contacts the join list until one member answers, with capped
// exponential backoff. It goes on even when another node has joined this
// one meanwhile: that node may be outside the cluster the list leads to.
func (a *membership) join(ctx context.Context, addrs []string) {
	wait := a.g.backoff[0]
	warned := false
	for ctx.Err() == nil {
		n, err := a.g.ml.Join(addrs)
		// Only this node answering (its own address under another
		// name) is no join.
		if n > 0 && a.g.ml.NumMembers() > 1 {
			a.log.Info("joined the cluster", "contacted", n)
			return
		}
		if ctx.Err() != nil {
			return
		}
		level := slog.LevelDebug
		if !warned {
			level, warned = slog.LevelWarn, true
		}
		a.log.Log(ctx, level, "no member to join answered yet; retrying", "join", addrs, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		wait = min(2*wait, a.g.backoff[1])
	}
}

// apply records a memberlist event and passes it on to the subscribers.
func (a *membership) apply(ctx actor.Context, ev *nodeEvent) {
	mem := a.members[ev.name]
	if mem == nil {
		mem = &Member{Name: ev.name}
		a.members[ev.name] = mem
	}
	state := Alive
	switch {
	case ev.kind != left && ev.leaving:
		state = Leaving
	case ev.kind == left && (ev.leaving || mem.State == Leaving):
		// Memberlist reports departures and failures alike; a member
		// that announced its departure left, any other failed.
		state = Left
	case ev.kind == left:
		state = Failed
	}
	if state != mem.State {
		mem.Since = time.Now()
	}
	mem.Addr, mem.Meta, mem.State = ev.addr, ev.meta, state
	var out any
	switch ev.kind {
	case joined:
		a.log.Info("member joined", "member", ev.name, "addr", ev.addr, "roles", ev.meta.Roles)
		out = &MemberJoined{Member: *mem}
	case updated:
		a.log.Debug("member updated", "member", ev.name, "roles", ev.meta.Roles, "state", state)
		out = &MemberUpdated{Member: *mem}
	case left:
		if state == Failed {
			a.log.Warn("member failed", "member", ev.name, "addr", ev.addr)
		} else {
			a.log.Info("member left", "member", ev.name, "addr", ev.addr)
		}
		out = &MemberLeft{Member: *mem}
	}
	for _, pid := range a.subs {
		ctx.Send(pid, out)
	}
}

func (a *membership) names() []string {
	names := make([]string, 0, len(a.members))
	for name := range a.members {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// metaBroadcastTimeout bounds the wait for a metadata broadcast to go out.
const metaBroadcastTimeout = 2 * time.Second

// updateMeta puts new metadata in effect and gossips it in the
// background (memberlist waits for the broadcast to go out).
func (a *membership) updateMeta(meta Meta) error {
	if meta.Cluster != a.meta.Cluster || meta.Server != a.meta.Server {
		return errors.New("membership: the cluster and server name cannot change")
	}
	if err := a.setMeta(meta, a.leaving); err != nil {
		return err
	}
	a.meta = meta
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.g.ml.UpdateNode(metaBroadcastTimeout); err != nil {
			a.log.Warn("announcing new metadata failed", "err", err)
		}
	}()
	return nil
}

func (a *membership) setMeta(meta Meta, leaving bool) error {
	b, err := encodeMeta(meta, leaving)
	if err != nil {
		return err
	}
	a.g.d.meta.Store(&b)
	return nil
}

// leave marks this node as leaving in its metadata, so members can tell
// the departure from a failure, then announces the departure itself.
func (a *membership) leave(ctx actor.Context, m *Leave) {
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	a.leaving = true
	if err := a.setMeta(a.meta, true); err != nil {
		ctx.Respond(&LeaveReply{Err: err})
		return
	}
	root, sender := ctx.ActorSystem().Root, ctx.Sender()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		start := time.Now()
		_ = a.g.ml.UpdateNode(timeout / 2)
		err := a.g.ml.Leave(max(timeout-time.Since(start), timeout/2))
		if err != nil {
			err = fmt.Errorf("membership: leaving: %w", err)
		}
		if sender != nil {
			root.Send(sender, &LeaveReply{Err: err})
		}
	}()
}
