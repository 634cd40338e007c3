package node

// configKeys are the keys Config.Apply reads ("<shorthost>_password"
// aside); a test keeps the list and Apply's switch in step.
var configKeys = []string{
	"admin_listen", "admins", "allowallsubscribe", "allowplaintext", "allowplaintext_loopback", "altnamespace",
	"backend_addrs",
	"client_timeout", "cluster_key_file", "cluster_name", "crossdomains", "data", "defaultpartition",
	"failedloginpause", "frontend_extensions", "gossip_join", "gossip_listen", "gossip_preset", "imap_connections_max", "imap_listen",
	"imaps_listen", "ldap_base", "ldap_bind_dn", "ldap_filter", "ldap_password", "ldap_uri",
	"lmtp_listen", "lmtp_require_auth", "log_level",
	"login_throttle_exempt", "login_throttle_failures", "login_throttle_window", "login_timeout",
	"maxconns_per_host", "maxliteral", "maxlogins_per_user", "maxmessagesize", "mupdate_authname", "mupdate_connections_max", "mupdate_idle_timeout",
	"mupdate_listen", "mupdate_log_retain", "mupdate_password", "mupdate_password_file",
	"mupdate_retry_delay", "mupdate_server", "mupdate_tls", "mupdate_username",
	"mupdate_write_timeout", "password_check", "pop3_listen", "pop3s_listen", "poptimeout",
	"proxy_authname", "proxy_password", "proxyservers", "roles", "rookery_data",
	"sasl_pwcheck_method", "sasl_saslauthd_path", "saslauthd_path", "serverlist", "servername", "timeout", "tls_client_ca_file", "tls_server_cert",
	"tls_server_key", "unixhierarchysep", "users", "users_file", "users_poll", "virtdomains",
}

// SuggestKey returns the known option closest to an unknown key by edit
// distance, for a "did you mean" after a typo such as "imap_lissten", or
// "" when none is close: a Cyrus option this node does not use should get
// no suggestion, so the allowance grows slowly with the key's length.
func SuggestKey(key string) string {
	limit := min(2, max(1, len(key)/5))
	if len(key) < 3 {
		return ""
	}
	best, bestD := "", limit+1
	for _, k := range configKeys {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance counts the insertions, deletions, substitutions and swaps
// of neighbours that turn a into b (optimal string alignment).
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
