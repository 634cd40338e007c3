package admin

import (
	"runtime"

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

	// CommandDuration is how long commands took from their first line
	// to their reply, by listener and command
	// (rookery_command_duration_seconds{listener,cmd}).
	CommandDuration *prometheus.HistogramVec
	// LoginFailures counts failed authentications, by listener
	// (rookery_login_failures_total{listener}).
	LoginFailures *prometheus.CounterVec
	// ConnectionsRefused counts connections and logins refused by a
	// listener's caps, by listener and reason: "limit", "host", "user",
	// or "unauthenticated" for one not logged in cut short to make room
	// (rookery_connections_refused_total{listener,reason}).
	ConnectionsRefused *prometheus.CounterVec
}

// Roles say which role-specific collectors a node's registry serves:
// a gauge of a role the node does not run would sit at 0 and fire naive
// alerts (a replica "disconnected" on every backend). The collectors
// exist either way, so counting into one not served costs nothing.
type Roles struct {
	// Version is the node's version (rookery_build_info{version}).
	Version string
	// Master serves rookery_mupdate_conflicts_total.
	Master bool
	// Replica serves the rookery_replica_* gauges.
	Replica bool
	// MUPDATE serves the MUPDATE listener's metrics, the reservations
	// and the UPDATE streams (masters and replicas).
	MUPDATE bool
	// Mail serves the IMAP, POP3 and LMTP metrics (backends and
	// frontends).
	Mail bool
	// Frontend serves rookery_proxied_sessions.
	Frontend bool
}

// commandBuckets reach from a cached FETCH (well under a millisecond)
// to a large APPEND or a slow backend (tens of seconds).
var commandBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// NewMetrics makes the metrics of a node running roles in a new
// registry.
func NewMetrics(roles Roles) *Metrics {
	reg := prometheus.NewRegistry()
	// serve registers c when its role runs here.
	serve := func(role bool, c prometheus.Collector) {
		if role {
			reg.MustRegister(c)
		}
	}
	gauge := func(role bool, name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		serve(role, g)
		return g
	}
	counter := func(role bool, name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		serve(role, c)
		return c
	}
	protocol := func(role bool, proto, label string) Protocol {
		cmds := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rookery_" + proto + "_commands_total",
			Help: label + " commands received, by command.",
		}, []string{"command"})
		serve(role, cmds)
		return Protocol{
			Connections: gauge(role, "rookery_"+proto+"_connections", label+" connections open."),
			Commands:    cmds,
		}
	}
	m := &Metrics{
		Registry: reg,
		MUPDATE:  protocol(roles.MUPDATE, "mupdate", "MUPDATE"),
		IMAP:     protocol(roles.Mail, "imap", "IMAP"),
		POP3:     protocol(roles.Mail, "pop3", "POP3"),
		LMTP:     protocol(roles.Mail, "lmtp", "LMTP"),

		Mailboxes:         gauge(true, "rookery_mailboxes", "Entries in this node's mailbox list."),
		Reservations:      gauge(roles.MUPDATE, "rookery_mupdate_reservations", "Mailbox-list entries reserved and not yet active."),
		Conflicts:         counter(roles.Master, "rookery_mupdate_conflicts_total", "Mailbox-list writes refused because they clashed with an existing entry."),
		UpdateSubscribers: gauge(roles.MUPDATE, "rookery_mupdate_update_subscribers", "MUPDATE UPDATE streams being served."),

		ReplicaConnected:  gauge(roles.Replica, "rookery_replica_connected", "1 while the replica streams changes from its master."),
		ReplicaLag:        gauge(roles.Replica, "rookery_replica_lag_seconds", "How far the replica is behind its master."),
		ReplicaLastSync:   gauge(roles.Replica, "rookery_replica_last_sync_timestamp_seconds", "When the replica last finished a resync or resume."),
		ReplicaAppliedSeq: gauge(roles.Replica, "rookery_replica_applied_seq", "The master's sequence number of the last change applied here."),

		LMTPDeliveries: counter(roles.Mail, "rookery_lmtp_deliveries_total", "Messages delivered to a mailbox over LMTP."),
		LMTPDeferrals:  counter(roles.Mail, "rookery_lmtp_deferrals_total", "LMTP recipients answered with a temporary failure."),
	}
	m.ProxiedSessions = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rookery_proxied_sessions",
		Help: "Client sessions proxied to a backend, by backend and protocol.",
	}, []string{"backend", "protocol"})
	serve(roles.Frontend, m.ProxiedSessions)
	m.StorageState = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rookery_storage_state",
		Help: "Disk state of each store: 0 ok, 1 full, 2 failed.",
	}, []string{"store"})
	m.CommandDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "rookery_command_duration_seconds",
		Help:    "Time from a command's first line to its reply, by listener and command.",
		Buckets: commandBuckets,
	}, []string{"listener", "cmd"})
	m.LoginFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rookery_login_failures_total",
		Help: "Failed authentications, by listener.",
	}, []string{"listener"})
	m.ConnectionsRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rookery_connections_refused_total",
		Help: "Connections and logins refused by a listener's caps, by listener and reason.",
	}, []string{"listener", "reason"})
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rookery_build_info",
		Help: "Always 1; its labels say which build runs.",
	}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(roles.Version, runtime.Version()).Set(1)
	reg.MustRegister(m.StorageState, m.CommandDuration, m.LoginFailures, m.ConnectionsRefused, buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
