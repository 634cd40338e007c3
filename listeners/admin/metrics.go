package admin

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Protocol is the pair of metrics every mail protocol listener keeps.
type Protocol struct {
	// Connections open now (rookery_<proto>_connections).
	Connections prometheus.Gauge
	// Commands received, by command name in upper case
	// (rookery_<proto>_commands_total{command}).
	Commands *prometheus.CounterVec
}

// Metrics is one node's set of collectors, in a registry of its own (so
// several nodes fit in one process). The node hands it to the pieces that
// count; they only ever increment or set.
type Metrics struct {
	// Registry holds every collector below plus the Go runtime and process
	// collectors; /metrics serves it.
	Registry *prometheus.Registry

	MUPDATE, IMAP, POP3, LMTP Protocol

	// Mailboxes is the number of entries in this node's mailbox list
	// (rookery_mailboxes).
	Mailboxes prometheus.Gauge
	// Reservations is the number of entries reserved but not yet active
	// (rookery_mupdate_reservations).
	Reservations prometheus.Gauge
	// Conflicts counts writes the master refused because they clashed
	// with an existing entry (rookery_mupdate_conflicts_total).
	Conflicts prometheus.Counter
	// UpdateSubscribers is the number of UPDATE streams being served
	// (rookery_mupdate_update_subscribers).
	UpdateSubscribers prometheus.Gauge

	// ReplicaConnected is 1 while the replica streams from its master
	// (rookery_replica_connected).
	ReplicaConnected prometheus.Gauge
	// ReplicaLag is how far the replica is behind its master, in seconds
	// (rookery_replica_lag_seconds).
	ReplicaLag prometheus.Gauge
	// ReplicaLastSync is when the replica last finished a full resync or
	// resume, as a Unix time (rookery_replica_last_sync_timestamp_seconds).
	ReplicaLastSync prometheus.Gauge
	// ReplicaAppliedSeq is the master's sequence number of the last change
	// applied (rookery_replica_applied_seq).
	ReplicaAppliedSeq prometheus.Gauge

	// ProxiedSessions is the number of client sessions a frontend is
	// proxying, by backend and protocol
	// (rookery_proxied_sessions{backend,protocol}).
	ProxiedSessions *prometheus.GaugeVec

	// LMTPDeliveries counts messages delivered to a mailbox
	// (rookery_lmtp_deliveries_total); LMTPDeferrals counts recipients
	// answered with a temporary failure (rookery_lmtp_deferrals_total).
	LMTPDeliveries, LMTPDeferrals prometheus.Counter

	// StorageState is each store's disk state: 0 ok, 1 full (writes
	// refused until space is freed), 2 failed (until a restart)
	// (rookery_storage_state{store}).
	StorageState *prometheus.GaugeVec
}

// NewMetrics makes a node's metrics in a new registry.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		reg.MustRegister(g)
		return g
	}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		reg.MustRegister(c)
		return c
	}
	protocol := func(proto, label string) Protocol {
		cmds := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rookery_" + proto + "_commands_total",
			Help: label + " commands received, by command.",
		}, []string{"command"})
		reg.MustRegister(cmds)
		return Protocol{
			Connections: gauge("rookery_"+proto+"_connections", label+" connections open."),
			Commands:    cmds,
		}
	}
	m := &Metrics{
		Registry: reg,
		MUPDATE:  protocol("mupdate", "MUPDATE"),
		IMAP:     protocol("imap", "IMAP"),
		POP3:     protocol("pop3", "POP3"),
		LMTP:     protocol("lmtp", "LMTP"),

		Mailboxes:         gauge("rookery_mailboxes", "Entries in this node's mailbox list."),
		Reservations:      gauge("rookery_mupdate_reservations", "Mailbox-list entries reserved and not yet active."),
		Conflicts:         counter("rookery_mupdate_conflicts_total", "Mailbox-list writes refused because they clashed with an existing entry."),
		UpdateSubscribers: gauge("rookery_mupdate_update_subscribers", "MUPDATE UPDATE streams being served."),

		ReplicaConnected:  gauge("rookery_replica_connected", "1 while the replica streams changes from its master."),
		ReplicaLag:        gauge("rookery_replica_lag_seconds", "How far the replica is behind its master."),
		ReplicaLastSync:   gauge("rookery_replica_last_sync_timestamp_seconds", "When the replica last finished a resync or resume."),
		ReplicaAppliedSeq: gauge("rookery_replica_applied_seq", "The master's sequence number of the last change applied here."),

		LMTPDeliveries: counter("rookery_lmtp_deliveries_total", "Messages delivered to a mailbox over LMTP."),
		LMTPDeferrals:  counter("rookery_lmtp_deferrals_total", "LMTP recipients answered with a temporary failure."),
	}
	m.ProxiedSessions = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rookery_proxied_sessions",
		Help: "Client sessions proxied to a backend, by backend and protocol.",
	}, []string{"backend", "protocol"})
	m.StorageState = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rookery_storage_state",
		Help: "Disk state of each store: 0 ok, 1 full, 2 failed.",
	}, []string{"store"})
	reg.MustRegister(m.ProxiedSessions, m.StorageState,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
