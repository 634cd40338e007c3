package node

import (
	"time"

	"github.com/rookery/rookery/listeners/admin"
)

// listenerMetrics counts one listener (server or proxy) into the node's
// collectors; it is the Metrics hook of the mupdate, imap, imapproxy,
// pop3 and lmtp packages, each of which uses the methods it needs.
type listenerMetrics struct {
	all   *admin.Metrics
	proto admin.Protocol
	// protocol is the protocol label of rookery_proxied_sessions.
	protocol string
	// listener is the listener label of rookery_command_duration_seconds
	// and rookery_login_failures_total: the protocol, with "proxy"
	// appended on a frontend.
	listener string
}

// listenerMetrics is the hook of listener, a listener of protocol (its
// label in rookery_proxied_sessions), counting commands into proto.
func (n *Node) listenerMetrics(listener, protocol string, proto admin.Protocol) listenerMetrics {
	// A listener that has refused nobody yet shows 0, so that rate() and
	// alerts see the series from the start.
	n.metrics.LoginFailures.WithLabelValues(listener)
	for _, reason := range []string{"limit", "host", "user", "unauthenticated"} {
		n.metrics.ConnectionsRefused.WithLabelValues(listener, reason)
	}
	return listenerMetrics{all: n.metrics, proto: proto, protocol: protocol, listener: listener}
}

func (m listenerMetrics) Command(name string) (done func()) {
	m.proto.Commands.WithLabelValues(name).Inc()
	start := time.Now()
	return func() {
		m.all.CommandDuration.WithLabelValues(m.listener, name).Observe(time.Since(start).Seconds())
	}
}

func (m listenerMetrics) LoginFailed() { m.all.LoginFailures.WithLabelValues(m.listener).Inc() }

func (m listenerMetrics) Refused(reason string) {
	m.all.ConnectionsRefused.WithLabelValues(m.listener, reason).Inc()
}

func (m listenerMetrics) Delivered() { m.all.LMTPDeliveries.Inc() }

func (m listenerMetrics) Deferred() { m.all.LMTPDeferrals.Inc() }

func (m listenerMetrics) Proxying(backend string, delta int) {
	m.all.ProxiedSessions.WithLabelValues(backend, m.protocol).Add(float64(delta))
}
