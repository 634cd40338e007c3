package node

import "github.com/rookery/rookery/listeners/admin"

// listenerMetrics counts one protocol's listener (server or proxy) into
// the node's collectors; it is the Metrics hook of the mupdate, imap,
// imapproxy, pop3 and lmtp packages, each of which uses the methods it
// needs.
type listenerMetrics struct {
	all   *admin.Metrics
	proto admin.Protocol
	// protocol is the protocol label of rookery_proxied_sessions.
	protocol string
}

// listenerMetrics is the hook of a listener of protocol (its label in
// rookery_proxied_sessions), counting commands into proto.
func (n *Node) listenerMetrics(protocol string, proto admin.Protocol) listenerMetrics {
	return listenerMetrics{all: n.metrics, proto: proto, protocol: protocol}
}

func (m listenerMetrics) Command(name string) { m.proto.Commands.WithLabelValues(name).Inc() }

func (m listenerMetrics) Delivered() { m.all.LMTPDeliveries.Inc() }

func (m listenerMetrics) Deferred() { m.all.LMTPDeferrals.Inc() }

func (m listenerMetrics) Proxying(backend string, delta int) {
	m.all.ProxiedSessions.WithLabelValues(backend, m.protocol).Add(float64(delta))
}
