package node

import (
	"context"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/rookery/rookery/actors/proxy"
	"github.com/rookery/rookery/listeners/frontend"
	"github.com/rookery/rookery/store"
)

// proxySessions returns the frontend listeners' NewSession: a
// proxy-session actor per client connection, routing by table.
func (n *Node) proxySessions(table *frontend.Table) func(protocol string) frontend.Session {
	return func(protocol string) frontend.Session {
		pid := n.system.Root.Spawn(proxy.Props(proxy.Config{
			Protocol: protocol,
			Table:    table,
			Proxying: listenerMetrics{all: n.metrics, protocol: protocol}.Proxying,
		}))
		return &proxySession{root: n.system.Root, pid: pid}
	}
}

// proxySession is a listener's handle on its proxy-session actor.
type proxySession struct {
	root *actor.RootContext
	pid  *actor.PID
}

func (p *proxySession) Lookup(ctx context.Context, name string) (store.Entry, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(askTimeout)
	}
	return p.route(&proxy.Route{Mailbox: name, Kick: true, Deadline: deadline})
}

func (p *proxySession) LookupNoKick(name string) (store.Entry, error) {
	return p.route(&proxy.Route{Mailbox: name})
}

func (p *proxySession) route(r *proxy.Route) (store.Entry, error) {
	timeout := askTimeout
	if !r.Deadline.IsZero() {
		// The actor answers at the deadline at the latest; a little
		// more lets that answer arrive.
		timeout = max(time.Until(r.Deadline), 0) + time.Second
	}
	res, err := p.root.RequestFuture(p.pid, r, timeout).Result()
	if err != nil {
		return store.Entry{}, fmt.Errorf("node: routing %q: %w", r.Mailbox, err)
	}
	reply := res.(*proxy.RouteReply)
	return reply.Entry, reply.Err
}

func (p *proxySession) LoggedIn(user string) { p.root.Send(p.pid, &proxy.LoggedIn{User: user}) }

func (p *proxySession) Selected(mailbox, server string) {
	p.root.Send(p.pid, &proxy.Selected{Mailbox: mailbox, Server: server})
}

func (p *proxySession) Opened(server string) {
	p.root.Send(p.pid, &proxy.BackendOpened{Server: server})
}

func (p *proxySession) Closed(server string) {
	p.root.Send(p.pid, &proxy.BackendClosed{Server: server})
}

func (p *proxySession) End() { p.root.Poison(p.pid) }
