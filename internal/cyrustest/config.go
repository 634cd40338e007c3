package cyrustest

import (
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// maxDirLen keeps the longest unix socket of an instance
// (DIR/conf/socket/mupdate.target) within sun_path's 108 bytes.
const maxDirLen = 77

// safeValue is what may go into imapd.conf and cyrus.conf unquoted.
var safeValue = regexp.MustCompile(`^[A-Za-z0-9._@+=:/-]*$`)

// confKey is what an imapd.conf option is named like.
var confKey = regexp.MustCompile(`^[a-z0-9_-]+$`)

// serverName picks an instance's Cyrus servername when Options has none.
// A Cyrus frontend reaches a backend at its servername: "host:port" sends
// every proxied protocol to that one port, a bare "host" uses the
// /etc/services ports of imap, pop3 and lmtp. So a backend on exactly those
// ports is named by its address (full IMAP, POP3 and LMTP proxying), any
// other by address and IMAP port (IMAP proxying only).
func serverName(role string, o Options) string {
	if o.ServerName != "" {
		return o.ServerName
	}
	switch role {
	case RoleMupdateMaster:
		return net.JoinHostPort(o.Addr, strconv.Itoa(o.MupdatePort))
	case RoleBackend:
		std := func(service string, port int) bool {
			p, err := net.LookupPort("tcp", service)
			return err == nil && p == port
		}
		if std("imap", o.IMAPPort) && (o.POP3Port == 0 || std("pop3", o.POP3Port)) &&
			(o.LMTPPort == 0 || std("lmtp", o.LMTPPort)) {
			return o.Addr
		}
	}
	return net.JoinHostPort(o.Addr, strconv.Itoa(o.IMAPPort))
}

// check reports what is wrong with the options for role, all at once.
func (o Options) check(role string) error {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if ip := net.ParseIP(o.Addr).To4(); ip == nil || ip[0] != 127 {
		bad("address %q is not 127.x.y.z", o.Addr)
	}
	switch role {
	case RoleMupdateMaster:
		if o.MupdatePort == 0 {
			bad("a mupdate master needs MupdatePort")
		}
		if o.IMAPPort != 0 || o.POP3Port != 0 || o.LMTPPort != 0 {
			bad("a mupdate master takes only MupdatePort")
		}
	case RoleBackend, RoleFrontend:
		if _, _, err := net.SplitHostPort(o.Master); err != nil {
			bad("%s needs Master as host:port: %v", role, err)
		}
		if o.IMAPPort == 0 {
			bad("%s needs IMAPPort", role)
		}
	}
	if role == RoleBackend && o.MupdatePort != 0 {
		bad("a backend takes no MupdatePort (it pushes to Master)")
	}
	if role != RoleFrontend && len(o.Serverlist) > 0 {
		bad("Serverlist is for frontends")
	}
	for _, v := range append([]string{o.Master, o.ServerName, o.Name}, o.Serverlist...) {
		if !safeValue.MatchString(v) {
			bad("%q has characters Cyrus's config files cannot take", v)
		}
	}
	for k, v := range o.Conf {
		if !confKey.MatchString(k) || strings.ContainsAny(v, "\r\n") {
			bad("bad imapd.conf option %q: %q", k, v)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("cyrustest: %s", strings.Join(errs, "; "))
	}
	return nil
}

// imapdConf returns the instance's imapd.conf: a murder member with the
// namespace of Debian's default config, SASL PLAIN/LOGIN against its own
// sasldb, everything inside DIR, then the caller's Conf on top.
func (i *Instance) imapdConf() string {
	d, o := i.Dir, i.opt
	conf := map[string]string{
		"servername":          i.ServerName,
		"configdirectory":     d + "/conf",
		"defaultpartition":    "default",
		"partition-default":   d + "/spool",
		"sievedir":            d + "/sieve",
		"temp_path":           d + "/tmp",
		"lmtpsocket":          d + "/conf/socket/lmtp",
		"idlesocket":          d + "/conf/socket/idle",
		"notifysocket":        d + "/conf/socket/notify",
		"syslog_prefix":       i.Name,
		"altnamespace":        "no",
		"unixhierarchysep":    "no",
		"allowplaintext":      "yes",
		"allowusermoves":      "yes",
		"sasl_pwcheck_method": "auxprop",
		"sasl_auxprop_plugin": "sasldb",
		"sasl_sasldb_path":    d + "/sasldb2",
		"sasl_mech_list":      "PLAIN LOGIN",
	}
	member := func() {
		conf["mupdate_server"] = o.Master // Cyrus ignores mupdate_port here
		conf["mupdate_username"] = MupdateUser
		conf["mupdate_authname"] = MupdateUser
		conf["mupdate_password"] = MupdatePass
	}
	switch i.Role {
	case RoleMupdateMaster:
		conf["admins"] = AdminUser + " " + MupdateUser
	case RoleBackend:
		member()
		conf["admins"] = AdminUser
		conf["proxyservers"] = ProxyUser
		conf["lmtp_admins"] = AdminUser + " " + ProxyUser
	case RoleFrontend:
		// A frontend is a server with mupdate_server and no proxyservers.
		member()
		conf["admins"] = AdminUser
		conf["lmtp_admins"] = AdminUser
		conf["proxy_authname"] = ProxyUser
		conf["proxy_password"] = ProxyPass
		if len(o.Serverlist) > 0 {
			conf["serverlist"] = strings.Join(o.Serverlist, " ")
		}
	}
	maps.Copy(conf, o.Conf)
	var b strings.Builder
	b.WriteString("# written by cyrustest on every start\n")
	for _, k := range slices.Sorted(maps.Keys(conf)) {
		fmt.Fprintf(&b, "%s: %s\n", k, conf[k])
	}
	return b.String()
}

// cyrusConf returns the instance's cyrus.conf. Every command carries -C,
// because master does not pass its own on to the services it runs.
func (i *Instance) cyrusConf() string {
	o := i.opt
	cmd := func(bin string, args ...string) string {
		return strings.Join(append([]string{filepath.Join(cyrusBin, bin), "-C", i.conf()}, args...), " ")
	}
	tcp := func(port int) string { return net.JoinHostPort(o.Addr, strconv.Itoa(port)) }
	var b strings.Builder
	b.WriteString("# written by cyrustest on every start\nSTART {\n")
	fmt.Fprintf(&b, "  recover cmd=%q\n", cmd("ctl_cyrusdb", "-r"))
	if i.Role == RoleBackend {
		// Pushes the backend's mailboxes to the master; the master exits
		// if this fails, e.g. when the mupdate master is not reachable.
		fmt.Fprintf(&b, "  mupdatepush cmd=%q\n", cmd("ctl_mboxlist", "-m"))
	}
	b.WriteString("}\nSERVICES {\n")
	service := func(name, command, listen string, prefork int) {
		fmt.Fprintf(&b, "  %s cmd=%q listen=%q prefork=%d\n", name, command, listen, prefork)
	}
	switch i.Role {
	case RoleMupdateMaster:
		service("mupdate", cmd("mupdate", "-m"), tcp(o.MupdatePort), 1)
	case RoleFrontend:
		// The mupdate slave that keeps the frontend's mailboxes.db current.
		listen := i.Dir + "/conf/socket/mupdate"
		if o.MupdatePort != 0 {
			listen = tcp(o.MupdatePort)
		}
		service("mupdate", cmd("mupdate"), listen, 1)
	}
	if i.Role != RoleMupdateMaster {
		service("imap", cmd("imapd"), tcp(o.IMAPPort), 0)
		if o.POP3Port != 0 {
			service("pop3", cmd("pop3d"), tcp(o.POP3Port), 0)
		}
		if o.LMTPPort != 0 {
			lmtp := cmd("lmtpd")
			if o.LMTPPreauth {
				lmtp = cmd("lmtpd", "-a")
			}
			service("lmtp", lmtp, tcp(o.LMTPPort), 0)
		}
		service("lmtpunix", cmd("lmtpd"), i.Dir+"/conf/socket/lmtp", 0)
	}
	b.WriteString("}\nEVENTS {\n")
	fmt.Fprintf(&b, "  checkpoint cmd=%q period=30\n", cmd("ctl_cyrusdb", "-c"))
	b.WriteString("}\n")
	return b.String()
}

// layout creates the instance's folders and config files; data already in
// DIR (mailboxes, users) stay.
func (i *Instance) layout() error {
	for _, sub := range []string{"etc", "spool", "sieve", "tmp", "run", "log", "lib",
		"conf/db", "conf/socket", "conf/proc", "conf/lock", "conf/log", "conf/msg",
		"conf/user", "conf/quota", "conf/ptclient", "conf/sync", "conf/cores"} {
		if err := os.MkdirAll(filepath.Join(i.Dir, sub), 0o750); err != nil {
			return fmt.Errorf("cyrustest: %w", err)
		}
	}
	// The services, run as user cyrus, load the syslog shim from lib.
	if err := os.Chmod(filepath.Join(i.Dir, "lib"), 0o755); err != nil {
		return fmt.Errorf("cyrustest: %w", err)
	}
	if err := os.WriteFile(i.conf(), []byte(i.imapdConf()), 0o640); err != nil {
		return fmt.Errorf("cyrustest: %w", err)
	}
	if err := os.WriteFile(i.masterConf(), []byte(i.cyrusConf()), 0o640); err != nil {
		return fmt.Errorf("cyrustest: %w", err)
	}
	return nil
}

func (i *Instance) conf() string       { return filepath.Join(i.Dir, "etc", "imapd.conf") }
func (i *Instance) masterConf() string { return filepath.Join(i.Dir, "etc", "cyrus.conf") }
func (i *Instance) pidFile() string    { return filepath.Join(i.Dir, "run", "master.pid") }
func (i *Instance) logFile() string    { return filepath.Join(i.Dir, "log", "syslog") }
func (i *Instance) masterLog() string  { return filepath.Join(i.Dir, "log", "master.err") }
