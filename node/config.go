package node

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/listeners/imapproxy"
)

// Role is one job a node can do.
type Role string

// The roles a node can run. RoleAll expands to every role built so far.
const (
	RoleMaster   Role = "master"
	RoleReplica  Role = "replica"
	RoleBackend  Role = "backend"
	RoleFrontend Role = "frontend"
	RoleAll      Role = "all"
)

// knownRoles are the roles that exist.
var knownRoles = []Role{RoleMaster, RoleReplica, RoleBackend, RoleFrontend}

// allRoles is what "all" means: everything one machine can be on its own.
// A replica needs a master elsewhere, so it is never implied.
var allRoles = []Role{RoleMaster, RoleBackend}

// Config is a node's whole configuration. Defaults come first, then the
// imapd.conf-style file, then command-line flags; option names are Cyrus's
// where the meaning is the same.
type Config struct {
	// ServerName is this node's name in the murder (imapd.conf "servername");
	// masters put it in their greeting, backends in their locations.
	ServerName string
	// DataDir holds the node's Pebble stores and, by default, its users file.
	DataDir string
	// Roles the node runs.
	Roles []Role

	// MUPDATEListen is the MUPDATE listener address; empty turns it off.
	MUPDATEListen string

	// MUPDATEServer is the master a replica follows and a backend pushes
	// to, host:port ("mupdate_server"). A backend on the master's node
	// needs none.
	MUPDATEServer string
	// MUPDATEAuthname and MUPDATEPassword are the replica's credentials at
	// its master ("mupdate_authname", "mupdate_password" or, better,
	// "mupdate_password_file"); MUPDATEUsername is an optional
	// authorization id ("mupdate_username").
	MUPDATEAuthname, MUPDATEUsername, MUPDATEPassword string
	// MUPDATERetryDelay is the replica's keep-alive interval and the time
	// after which an unanswered keep-alive means the master is gone; it
	// also caps the wait between reconnections ("mupdate_retry_delay").
	MUPDATERetryDelay time.Duration
	// ClientTimeout bounds connecting, the greeting and authentication when
	// this node is a client of another server ("client_timeout").
	ClientTimeout time.Duration

	// IMAPListen is the IMAP listener address; empty turns it off.
	IMAPListen string
	// POP3Listen and LMTPListen are the backend's POP3 and LMTP listener
	// addresses; empty turns them off ("pop3_listen", "lmtp_listen").
	POP3Listen, LMTPListen string
	// LMTPRequireAuth makes LMTP deliveries need AUTH PLAIN as an admin or
	// proxy server; without it, anyone who reaches the LMTP listener may
	// deliver, like Cyrus's lmtpd -a ("lmtp_require_auth").
	LMTPRequireAuth bool
	// POP3IdleTimeout ends idle POP3 sessions ("poptimeout", minutes).
	POP3IdleTimeout time.Duration
	// IMAPSListen and POP3SListen are the implicit-TLS listeners of a
	// backend or frontend (993, 995); empty turns them off
	// ("imaps_listen", "pop3s_listen").
	IMAPSListen, POP3SListen string
	// TLSCert and TLSKey are PEM files for every TLS listener of the
	// node, reloaded on SIGHUP; without them a self-signed certificate
	// is made in DATA/tls ("tls_server_cert", "tls_server_key").
	TLSCert, TLSKey string
	// MUPDATETLS offers STARTTLS on the MUPDATE listener and takes it up
	// as a client ("mupdate_tls", default yes); Cyrus peers ignore it.
	MUPDATETLS bool
	// TLSClientCA verifies masters' certificates for MUPDATE STARTTLS;
	// without it the link is encrypted but the certificate unchecked
	// ("tls_client_ca_file").
	TLSClientCA string
	// AllowPlaintext lets clients log in with a plaintext password
	// (IMAP LOGIN and PLAIN, POP3 USER/PASS and PLAIN, LMTP AUTH) without
	// TLS ("allowplaintext", default no as in Cyrus).
	AllowPlaintext bool
	// PlaintextLoopback counts a backend's connections from a loopback
	// address as secure, as Cyrus counts UNIX-socket ones, so that
	// plaintext logins work there without allowplaintext
	// ("allowplaintext_loopback", default yes).
	PlaintextLoopback bool
	// ProxyAuthname and ProxyPassword are how a frontend logs in to
	// backends ("proxy_authname", "proxy_password"); ServerPasswords are
	// per-backend passwords by short host name ("<shorthost>_password").
	ProxyAuthname, ProxyPassword string
	ServerPasswords              map[string]string
	// BackendAddrs declares backends that do not gossip (real Cyrus
	// ones): server name -> IMAP, POP3 and LMTP addresses
	// ("backend_addrs: NAME=IMAP[,POP3[,LMTP]] ...").
	BackendAddrs map[string][3]string
	// ServerList are the backends a frontend may place new top-level
	// mailboxes on ("serverlist"); empty means any.
	ServerList []string
	// FrontendExtensions are extensions a frontend announces beyond
	// those every kind of backend has, because all of its backends are
	// Rookery ones ("frontend_extensions"); only those of
	// imapproxy.RookeryPassthrough may be named.
	FrontendExtensions []string
	// ProxyServers may log in to a backend for another user
	// ("proxyservers"): frontends.
	ProxyServers []string
	// Separator is the IMAP hierarchy separator: '.' or, with
	// "unixhierarchysep: yes", '/'.
	Separator byte
	// Partition is where this backend puts new mailboxes; it is part of
	// their location in the murder ("defaultpartition").
	Partition string
	// MaxMessageSize caps a message in bytes ("maxmessagesize").
	MaxMessageSize int64
	// IMAPIdleTimeout ends idle IMAP sessions ("timeout", in minutes as
	// in Cyrus).
	IMAPIdleTimeout time.Duration
	// AllowAllSubscribe lets users subscribe to mailboxes that live on
	// other backends ("allowallsubscribe").
	AllowAllSubscribe bool

	// GossipListen is the gossip address (UDP and TCP); empty leaves the
	// node out of any cluster ("gossip_listen").
	GossipListen string
	// Join lists members to join, host:port ("gossip_join").
	Join []string
	// ClusterName keeps clusters on one network apart ("cluster_name").
	ClusterName string
	// ClusterKeyFile holds the key that encrypts gossip; nodes without it
	// cannot join ("cluster_key_file").
	ClusterKeyFile string
	// GossipPreset picks gossip timings: lan, wan or local
	// ("gossip_preset").
	GossipPreset string
	// AdminListen is the HTTP admin listener (/metrics, /status, /where);
	// empty turns it off ("admin_listen").
	AdminListen string

	// UsersFile is a passwd-style file of "name:{SCHEME}secret" lines.
	UsersFile string
	// UsersPoll is how often the users file is checked for changes, which
	// are then loaded without a restart ("users_poll"); 0 turns the
	// check off (SIGHUP still reloads).
	UsersPoll time.Duration
	// Admins may authenticate to MUPDATE and administer mailboxes ("admins").
	Admins []string
	// PasswordCheck is how client passwords are checked, in order, the
	// first that accepts winning ("password_check", or Cyrus's
	// "sasl_pwcheck_method" with auxprop for users): "users" (the users
	// file), "saslauthd" (the daemon at SaslauthdPath) and, on frontends,
	// "backend" (logging in as the user at the user's INBOX backend, for
	// users kept in a Cyrus backend's sasldb).
	PasswordCheck []string
	// SaslauthdPath is saslauthd's socket ("sasl_saslauthd_path").
	SaslauthdPath string
	// LDAP is the directory password_check's "ldap" binds to ("ldap_uri",
	// "ldap_base", "ldap_filter", "ldap_bind_dn", "ldap_password").
	LDAP auth.LDAP
	// LoginThrottleFailures failed logins from one address, or for one
	// user, within LoginThrottleWindow make the node refuse further
	// logins from it or for them, unchecked, for LoginThrottleWindow
	// ("login_throttle_failures", 0 turns it off; "login_throttle_window").
	LoginThrottleFailures int
	LoginThrottleWindow   time.Duration
	// LoginThrottleExempt are addresses the throttle does not block by
	// address ("login_throttle_exempt": IPs or CIDR prefixes).
	LoginThrottleExempt []netip.Prefix

	// FailedLoginPause delays the reply to a failed authentication
	// ("failedloginpause").
	FailedLoginPause time.Duration
	// LoginTimeout ends an IMAP, POP3 or MUPDATE connection that has not
	// logged in, or an LMTP one that has not said LHLO (AUTH with
	// lmtp_require_auth), this long after connecting, however busy it
	// keeps itself ("login_timeout"). Such connections may also hold at
	// most half of a listener's connections, the oldest making room for
	// a newcomer, so strangers never keep users out.
	LoginTimeout time.Duration
	// MaxLoginsPerUser caps the logged-in sessions of one user on this
	// node, IMAP and POP3 counted apart ("maxlogins_per_user", as Cyrus;
	// 0 for no cap).
	MaxLoginsPerUser int
	// MaxConnsPerHost caps the connections from one IP address to the
	// frontend's IMAP and POP3, logged in or not, counted apart, refused
	// before the greeting ("maxconns_per_host"; 0 for no cap). Backends
	// do not apply it: every session a frontend proxies comes from the
	// frontend's one address.
	MaxConnsPerHost int
	// MUPDATEConnectionsMax caps concurrent MUPDATE connections
	// ("mupdate_connections_max").
	MUPDATEConnectionsMax int
	// IMAPConnectionsMax caps concurrent connections to the node's IMAP
	// listener, the backend's or the frontend's ("imap_connections_max").
	// Zero keeps the listener's own cap: 1000 on a backend, 10000 on a
	// frontend, whose idle sessions cost less.
	IMAPConnectionsMax int
	// MUPDATEIdleTimeout closes MUPDATE connections that send nothing for
	// this long ("mupdate_idle_timeout"; Cyrus hard-codes 180 minutes).
	MUPDATEIdleTimeout time.Duration
	// MUPDATEWriteTimeout cuts off a peer that stops reading, such as a
	// stuck UPDATE subscriber ("mupdate_write_timeout").
	MUPDATEWriteTimeout time.Duration
	// MaxLiteral bounds every MUPDATE string ("maxliteral").
	MaxLiteral int
	// LogRetain is how many mailbox-list changes are kept for UPDATE
	// streams and replicas to catch up from ("mupdate_log_retain").
	LogRetain uint64

	// LogLevel of the node's logger ("log_level": debug, info, warn, error).
	LogLevel slog.Level
}

// DefaultConfig is the embedded all-in-one default: every role, data in
// ./rookery-data, listeners on loopback.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	return Config{
		ServerName:            host,
		DataDir:               "rookery-data",
		Roles:                 []Role{RoleAll},
		MUPDATEListen:         "127.0.0.1:3905",
		IMAPListen:            "127.0.0.1:1143",
		POP3Listen:            "127.0.0.1:1110",
		LMTPListen:            "127.0.0.1:2003",
		POP3IdleTimeout:       10 * time.Minute,
		ProxyAuthname:         "proxy",
		PasswordCheck:         []string{"users"},
		SaslauthdPath:         "/var/run/saslauthd/mux",
		LoginThrottleFailures: 10,
		LoginThrottleWindow:   5 * time.Minute,
		UsersPoll:             2 * time.Second,
		MUPDATETLS:            true,
		PlaintextLoopback:     true,
		AdminListen:           "127.0.0.1:9905",
		ClusterName:           "rookery",
		GossipPreset:          "lan",
		Separator:             '.',
		Partition:             "default",
		MaxMessageSize:        100 << 20,
		IMAPIdleTimeout:       30 * time.Minute,
		FailedLoginPause:      3 * time.Second,
		LoginTimeout:          time.Minute,
		MaxLoginsPerUser:      100,
		MUPDATEConnectionsMax: 128,
		MUPDATEIdleTimeout:    180 * time.Minute,
		MUPDATEWriteTimeout:   30 * time.Second,
		MUPDATERetryDelay:     20 * time.Second,
		ClientTimeout:         10 * time.Second,
		MaxLiteral:            131072,
		LogRetain:             1_000_000,
		LogLevel:              slog.LevelInfo,
	}
}

// imapConnectionsMax is the cap of the node's IMAP listener: the
// configured one, else the listener's own default (see
// IMAPConnectionsMax).
func (c *Config) imapConnectionsMax() int {
	switch {
	case c.IMAPConnectionsMax > 0:
		return c.IMAPConnectionsMax
	case c.Has(RoleFrontend):
		return 10000
	}
	return 1000
}

// fdReserve is what a node keeps open besides client connections: its
// stores' files, listeners, MUPDATE and gossip peers.
const fdReserve = 1000

// descriptorsNeeded is how many file descriptors the node may use with
// every IMAP connection the cap allows open: a frontend session holds its
// client's socket and one to its backend, more only while it uses
// several. POP3 and LMTP, short-lived, are left to the reserve.
func (c *Config) descriptorsNeeded() int {
	if c.IMAPListen == "" && c.IMAPSListen == "" {
		return fdReserve + c.MUPDATEConnectionsMax
	}
	perConn := 1
	if c.Has(RoleFrontend) {
		perConn = 2
	}
	return fdReserve + c.MUPDATEConnectionsMax + perConn*c.imapConnectionsMax()
}

// Has reports whether the node runs role r.
func (c *Config) Has(r Role) bool {
	return slices.Contains(c.Roles, r) || (slices.Contains(c.Roles, RoleAll) && slices.Contains(allRoles, r))
}

// UsersPath is the users file in effect: the configured one, else
// DATA/users.
func (c *Config) UsersPath() string {
	if c.UsersFile != "" {
		return c.UsersFile
	}
	return filepath.Join(c.DataDir, "users")
}

// ConfigError lists every problem found in a configuration.
type ConfigError struct{ Problems []string }

func (e *ConfigError) Error() string {
	return "invalid configuration:\n  " + strings.Join(e.Problems, "\n  ")
}

// ReadConfigFile reads an imapd.conf-style file ("key: value", '#'
// comments) into a map. Cyrus config files are full of options that mean
// nothing here; the caller decides what to do with unknown ones.
func ReadConfigFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	defer f.Close()
	out := make(map[string]string)
	var problems []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) == "" {
			problems = append(problems, fmt.Sprintf("%s:%d: want \"key: value\"", path, n))
			continue
		}
		out[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("node: reading %s: %w", path, err)
	}
	if len(problems) > 0 {
		return nil, &ConfigError{Problems: problems}
	}
	return out, nil
}

// Apply sets options from key/value pairs (a config file's or flags'),
// collecting every problem. It returns the keys it did not recognise.
func (c *Config) Apply(kv map[string]string) (unknown []string, err error) {
	var problems []string
	bad := func(k, v, why string) { problems = append(problems, fmt.Sprintf("%s: %q: %s", k, v, why)) }
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := kv[k]
		switch k {
		case "servername":
			c.ServerName = v
		case "data", "rookery_data":
			c.DataDir = v
		case "roles":
			c.Roles = nil
			for _, r := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
				c.Roles = append(c.Roles, Role(strings.ToLower(r)))
			}
		case "mupdate_listen":
			c.MUPDATEListen = v
		case "mupdate_server":
			c.MUPDATEServer = v
		case "mupdate_authname":
			c.MUPDATEAuthname = v
		case "mupdate_username":
			c.MUPDATEUsername = v
		case "mupdate_password":
			c.MUPDATEPassword = v
		case "mupdate_password_file":
			b, err := os.ReadFile(v)
			if err != nil {
				bad(k, v, err.Error())
			}
			c.MUPDATEPassword = strings.TrimRight(string(b), "\r\n")
		case "mupdate_retry_delay":
			d, err := parseSeconds(v)
			if err != nil {
				bad(k, v, err.Error())
			}
			c.MUPDATERetryDelay = d
		case "client_timeout":
			d, err := parseSeconds(v)
			if err != nil {
				bad(k, v, err.Error())
			}
			c.ClientTimeout = d
		case "gossip_listen":
			c.GossipListen = v
		case "gossip_join":
			c.Join = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
		case "cluster_name":
			c.ClusterName = v
		case "cluster_key_file":
			c.ClusterKeyFile = v
		case "gossip_preset":
			c.GossipPreset = strings.ToLower(v)
		case "admin_listen":
			c.AdminListen = v
		case "imap_listen":
			c.IMAPListen = v
		case "imaps_listen":
			c.IMAPSListen = v
		case "pop3s_listen":
			c.POP3SListen = v
		case "mupdate_tls":
			b, err := parseBool(v)
			if err != nil {
				bad(k, v, err.Error())
			}
			c.MUPDATETLS = b
		case "tls_client_ca_file":
			c.TLSClientCA = v
		case "tls_server_cert":
			c.TLSCert = v
		case "tls_server_key":
			c.TLSKey = v
		case "allowplaintext":
			b, err := parseBool(v)
			if err != nil {
				bad(k, v, err.Error())
			}
			c.AllowPlaintext = b
		case "allowplaintext_loopback":
			b, err := parseBool(v)
			if err != nil {
				bad(k, v, err.Error())
			}
			c.PlaintextLoopback = b
		case "proxy_authname":
			c.ProxyAuthname = v
		case "proxy_password":
			c.ProxyPassword = v
		case "backend_addrs":
			c.BackendAddrs = make(map[string][3]string)
			for _, item := range strings.Fields(v) {
				name, addrs, ok := strings.Cut(item, "=")
				parts := strings.Split(addrs, ",")
				if !ok || name == "" || len(parts) > 3 {
					bad(k, item, "want NAME=IMAP[,POP3[,LMTP]]")
					continue
				}
				var a [3]string
				for i, p := range parts {
					if _, _, err := net.SplitHostPort(p); err != nil && p != "" {
						bad(k, item, fmt.Sprintf("%q is not host:port", p))
					}
					a[i] = p
				}
				c.BackendAddrs[name] = a
			}
		case "serverlist":
			c.ServerList = strings.Fields(v)
		case "frontend_extensions":
			c.FrontendExtensions = strings.Fields(strings.ToUpper(v))
		case "pop3_listen":
			c.POP3Listen = v
		case "lmtp_listen":
			c.LMTPListen = v
		case "lmtp_require_auth":
			b, err := parseBool(v)
			if err != nil {
				bad(k, v, err.Error())
			}
			c.LMTPRequireAuth = b
		case "poptimeout":
			n, err := strconv.Atoi(v)
			if err != nil {
				bad(k, v, "not a number of minutes")
			}
			c.POP3IdleTimeout = time.Duration(n) * time.Minute
		case "proxyservers":
			c.ProxyServers = strings.Fields(v)
		case "unixhierarchysep":
			b, err := parseBool(v)
			if err != nil {
				bad(k, v, err.Error())
			}
			c.Separator = '.'
			if b {
				c.Separator = '/'
			}
		case "defaultpartition":
			c.Partition = v
		case "maxmessagesize":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				bad(k, v, "not a number of bytes")
			}
			c.MaxMessageSize = n
		case "timeout":
			n, err := strconv.Atoi(v)
			if err != nil {
				bad(k, v, "not a number of minutes")
			}
			c.IMAPIdleTimeout = time.Duration(n) * time.Minute
		case "allowallsubscribe":
			b, err := parseBool(v)
			if err != nil {
				bad(k, v, err.Error())
			}
			c.AllowAllSubscribe = b
		case "users", "users_file":
			c.UsersFile = v
		case "users_poll":
			d, err := parseSeconds(v)
			if err != nil {
				bad(k, v, err.Error())
			}
			c.UsersPoll = d
		case "admins":
			c.Admins = strings.Fields(v)
		case "password_check":
			if _, both := kv["sasl_pwcheck_method"]; both {
				bad(k, v, "give password_check or sasl_pwcheck_method, not both")
			}
			c.PasswordCheck = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
		case "sasl_pwcheck_method":
			c.PasswordCheck = nil
			for _, m := range strings.Fields(v) {
				if m == "auxprop" {
					// Cyrus's auxprop is its sasldb; the users file is Rookery's.
					m = "users"
				} else if m != "saslauthd" {
					bad(k, v, fmt.Sprintf("method %q is not supported (use auxprop, meaning the users file, or saslauthd)", m))
				}
				c.PasswordCheck = append(c.PasswordCheck, m)
			}
		case "sasl_saslauthd_path", "saslauthd_path":
			c.SaslauthdPath = v
		case "ldap_uri":
			c.LDAP.URI = v
		case "ldap_base":
			c.LDAP.Base = v
		case "ldap_filter":
			c.LDAP.Filter = v
		case "ldap_bind_dn":
			c.LDAP.BindDN = v
		case "ldap_password":
			c.LDAP.Password = v
		case "login_throttle_failures":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				bad(k, v, "not a number of failures (0 turns the throttle off)")
			}
			c.LoginThrottleFailures = n
		case "login_throttle_exempt":
			c.LoginThrottleExempt = nil
			for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
				p, err := netip.ParsePrefix(f)
				if err != nil {
					a, aerr := netip.ParseAddr(f)
					if aerr != nil {
						bad(k, f, "not an IP address or prefix (such as 10.0.0.0/8)")
						continue
					}
					p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
				}
				c.LoginThrottleExempt = append(c.LoginThrottleExempt, p.Masked())
			}
		case "login_throttle_window":
			d, err := parseSeconds(v)
			if err != nil || d <= 0 {
				bad(k, v, "want a positive number of seconds")
			}
			c.LoginThrottleWindow = d
		case "failedloginpause":
			d, err := parseSeconds(v)
			if err != nil {
				bad(k, v, err.Error())
			}
			c.FailedLoginPause = d
		case "login_timeout":
			d, err := parseSeconds(v)
			if err != nil {
				bad(k, v, err.Error())
			}
			c.LoginTimeout = d
		case "maxlogins_per_user":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				bad(k, v, "not a number of sessions (0 for no cap)")
			}
			c.MaxLoginsPerUser = n
		case "maxconns_per_host":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				bad(k, v, "not a number of connections (0 for no cap)")
			}
			c.MaxConnsPerHost = n
		case "mupdate_connections_max":
			n, err := strconv.Atoi(v)
			if err != nil {
				bad(k, v, "not a number")
			}
			c.MUPDATEConnectionsMax = n
		case "imap_connections_max":
			n, err := strconv.Atoi(v)
			if err != nil {
				bad(k, v, "not a number")
			}
			c.IMAPConnectionsMax = n
		case "mupdate_idle_timeout":
			d, err := parseSeconds(v)
			if err != nil {
				bad(k, v, err.Error())
			}
			c.MUPDATEIdleTimeout = d
		case "mupdate_write_timeout":
			d, err := parseSeconds(v)
			if err != nil {
				bad(k, v, err.Error())
			}
			c.MUPDATEWriteTimeout = d
		case "maxliteral":
			n, err := strconv.Atoi(v)
			if err != nil {
				bad(k, v, "not a number")
			}
			c.MaxLiteral = n
		case "mupdate_log_retain":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				bad(k, v, "not a number")
			}
			c.LogRetain = n
		case "log_level":
			if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
				bad(k, v, "want debug, info, warn or error")
			}
		case "virtdomains", "altnamespace", "crossdomains":
			// Cyrus options that change what names mean: a node that
			// ignored them would file two domains' users together or
			// show another namespace than its Cyrus peers.
			if b, err := parseBool(v); err != nil || b {
				bad(k, v, "not supported: Rookery has one namespace, Cyrus's default (set it to no, or leave it out)")
			}
		default:
			// "<shorthost>_password": a frontend's password at one backend.
			if short, ok := strings.CutSuffix(k, "_password"); ok && short != "" {
				if c.ServerPasswords == nil {
					c.ServerPasswords = make(map[string]string)
				}
				c.ServerPasswords[short] = v
				continue
			}
			unknown = append(unknown, k)
		}
	}
	if len(problems) > 0 {
		return unknown, &ConfigError{Problems: problems}
	}
	return unknown, nil
}

// parseBool reads Cyrus's switch values.
func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "1", "yes", "on", "true", "t":
		return true, nil
	case "0", "no", "off", "false", "f":
		return false, nil
	}
	return false, errors.New("want yes or no")
}

// parseSeconds reads a duration the way Cyrus options are written: a bare
// number of seconds, or a Go duration ("3s", "10m").
func parseSeconds(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, errors.New("want seconds or a duration such as 3s")
	}
	return d, nil
}

// Validate reports every problem with the configuration at once.
func (c *Config) Validate() error {
	var problems []string
	if c.ServerName == "" {
		problems = append(problems, "servername: must not be empty")
	}
	if strings.ContainsAny(c.ServerName, "! \t\r\n") {
		problems = append(problems, fmt.Sprintf("servername: %q: must not contain '!' or white space", c.ServerName))
	}
	if c.DataDir == "" {
		problems = append(problems, "data: must not be empty")
	}
	if len(c.Roles) == 0 {
		problems = append(problems, "roles: at least one role is needed")
	}
	for _, r := range c.Roles {
		if r != RoleAll && !slices.Contains(knownRoles, r) {
			problems = append(problems, fmt.Sprintf("roles: unknown role %q (known: all, %s)", r, joinRoles(knownRoles)))
		}
	}
	if c.MUPDATEListen != "" {
		if _, _, err := net.SplitHostPort(c.MUPDATEListen); err != nil {
			problems = append(problems, fmt.Sprintf("mupdate_listen: %q: want host:port", c.MUPDATEListen))
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		problems = append(problems, "tls_server_cert, tls_server_key: give both or neither")
	}
	if c.Has(RoleFrontend) {
		if c.Has(RoleBackend) {
			problems = append(problems, "roles: frontend and backend need separate nodes (both serve the IMAP, POP3 and LMTP ports)")
		}
		if !c.Has(RoleMaster) && !c.Has(RoleReplica) {
			problems = append(problems, "roles: a frontend routes by a mailbox list: add replica (or master) to its roles")
		}
	}
	for _, e := range c.FrontendExtensions {
		if !slices.Contains(imapproxy.RookeryPassthrough, e) {
			problems = append(problems, fmt.Sprintf("frontend_extensions: %q cannot be announced (possible: %s)",
				e, strings.Join(imapproxy.RookeryPassthrough, " ")))
		}
	}
	if len(c.PasswordCheck) == 0 {
		problems = append(problems, "password_check: name at least one of users, saslauthd, ldap, backend")
	}
	for _, m := range c.PasswordCheck {
		if m != "users" && m != "backend" && m != "saslauthd" && m != "ldap" {
			problems = append(problems, fmt.Sprintf("password_check: unknown method %q (known: users, saslauthd, ldap, backend)", m))
		}
	}
	if slices.Contains(c.PasswordCheck, "ldap") && (c.LDAP.URI == "" || c.LDAP.Base == "") {
		problems = append(problems, "password_check: ldap needs ldap_uri and ldap_base")
	}
	if c.Has(RoleBackend) {
		if c.IMAPListen == "" {
			problems = append(problems, "imap_listen: the backend role needs an IMAP listener")
		}
		if c.Partition == "" || strings.ContainsAny(c.Partition, "! \t") {
			problems = append(problems, fmt.Sprintf("defaultpartition: %q: must be a non-empty word without '!'", c.Partition))
		}
		if c.MaxMessageSize < 1024 {
			problems = append(problems, "maxmessagesize: must be at least 1024")
		}
		if c.IMAPIdleTimeout < time.Minute {
			problems = append(problems, "timeout: must be at least 1 (minute)")
		}
		if !c.Has(RoleMaster) && (c.MUPDATEServer != "" || c.GossipListen != "") && c.MUPDATEAuthname == "" {
			problems = append(problems, "mupdate_authname: a backend needs credentials for its master")
		}
		if c.MUPDATEServer != "" {
			if _, _, err := net.SplitHostPort(c.MUPDATEServer); err != nil {
				problems = append(problems, fmt.Sprintf("mupdate_server: %q: want host:port (Cyrus's mupdate_port is not read either)", c.MUPDATEServer))
			}
		}
	}
	if c.Has(RoleBackend) && c.POP3IdleTimeout < time.Minute {
		problems = append(problems, "poptimeout: must be at least 1 (minute)")
	}
	for k, v := range map[string]string{"gossip_listen": c.GossipListen, "admin_listen": c.AdminListen,
		"pop3_listen": c.POP3Listen, "lmtp_listen": c.LMTPListen, "imaps_listen": c.IMAPSListen, "pop3s_listen": c.POP3SListen} {
		if v == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(v); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %q: want host:port", k, v))
		}
	}
	switch c.GossipPreset {
	case "lan", "wan", "local":
	default:
		problems = append(problems, fmt.Sprintf("gossip_preset: %q: want lan, wan or local", c.GossipPreset))
	}
	if c.GossipListen != "" && c.ClusterName == "" {
		problems = append(problems, "cluster_name: must not be empty")
	}
	if c.IMAPListen != "" {
		if _, _, err := net.SplitHostPort(c.IMAPListen); err != nil {
			problems = append(problems, fmt.Sprintf("imap_listen: %q: want host:port", c.IMAPListen))
		}
	}
	if c.Has(RoleReplica) {
		if c.Has(RoleMaster) {
			problems = append(problems, "roles: a node is either the master or a replica of one")
		}
		if _, _, err := net.SplitHostPort(c.MUPDATEServer); err != nil && (c.MUPDATEServer != "" || c.GossipListen == "") {
			problems = append(problems, fmt.Sprintf("mupdate_server: %q: a replica needs its master as host:port, or gossip to find it", c.MUPDATEServer))
		}
		if c.MUPDATEAuthname == "" {
			problems = append(problems, "mupdate_authname: a replica needs credentials for its master")
		}
		if c.ClientTimeout < 100*time.Millisecond {
			problems = append(problems, "client_timeout: must be at least 100ms")
		}
		if c.MUPDATERetryDelay < 100*time.Millisecond {
			problems = append(problems, "mupdate_retry_delay: must be at least 100ms")
		}
	}
	if c.Has(RoleMaster) && c.MUPDATEListen == "" {
		problems = append(problems, "mupdate_listen: the master role needs an MUPDATE listener")
	}
	if c.UsersPoll < 0 {
		problems = append(problems, "users_poll: must not be negative")
	}
	if c.FailedLoginPause < 0 {
		problems = append(problems, "failedloginpause: must not be negative")
	}
	if c.LoginTimeout < time.Second {
		problems = append(problems, "login_timeout: must be at least 1s")
	}
	if c.MUPDATEConnectionsMax < 1 {
		problems = append(problems, "mupdate_connections_max: must be at least 1")
	}
	if c.IMAPConnectionsMax < 0 {
		problems = append(problems, "imap_connections_max: must not be negative")
	}
	if c.MUPDATEIdleTimeout < time.Second {
		problems = append(problems, "mupdate_idle_timeout: must be at least 1s")
	}
	if c.MUPDATEWriteTimeout < 100*time.Millisecond {
		problems = append(problems, "mupdate_write_timeout: must be at least 100ms")
	}
	if c.MaxLiteral < 1024 || c.MaxLiteral > 131072 {
		// Cyrus peers (and Rookery's own client) die on longer strings.
		problems = append(problems, "maxliteral: must be between 1024 and 131072")
	}
	if c.LogRetain < 1000 {
		problems = append(problems, "mupdate_log_retain: must be at least 1000")
	}
	if len(problems) > 0 {
		return &ConfigError{Problems: problems}
	}
	return nil
}

func joinRoles(rs []Role) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}
