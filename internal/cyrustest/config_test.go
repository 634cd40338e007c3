package cyrustest

import (
	"fmt"
	"net"
	"strings"
	"testing"
)

// TestServerName checks the default servername rule: a backend on the
// /etc/services ports is named by its address alone, so Cyrus frontends
// proxy POP3 and LMTP to it too.
func TestServerName(t *testing.T) {
	if _, err := net.LookupPort("tcp", "lmtp"); err != nil {
		require(t, fmt.Errorf("cyrustest: no lmtp in /etc/services: %w", err))
	}
	for _, c := range []struct {
		role string
		opt  Options
		want string
	}{
		{RoleBackend, Options{Addr: "127.0.0.5", IMAPPort: 143, POP3Port: 110, LMTPPort: 2003}, "127.0.0.5"},
		{RoleBackend, Options{Addr: "127.0.0.5", IMAPPort: 143}, "127.0.0.5"},
		{RoleBackend, Options{Addr: "127.0.0.5", IMAPPort: 143, LMTPPort: 2024}, "127.0.0.5:143"},
		{RoleBackend, Options{Addr: "127.0.0.1", IMAPPort: 11143}, "127.0.0.1:11143"},
		{RoleFrontend, Options{Addr: "127.0.0.1", IMAPPort: 143}, "127.0.0.1:143"},
		{RoleMupdateMaster, Options{Addr: "127.0.0.1", MupdatePort: 3905}, "127.0.0.1:3905"},
		{RoleBackend, Options{Addr: "127.0.0.1", IMAPPort: 143, ServerName: "be1"}, "be1"},
	} {
		if got := serverName(c.role, c.opt); got != c.want {
			t.Errorf("serverName(%s, %+v) = %q, want %q", c.role, c.opt, got, c.want)
		}
	}
}

// TestOptionsCheck checks that every problem of the options is reported at
// once, before anything is written.
func TestOptionsCheck(t *testing.T) {
	err := Options{Addr: "10.0.0.1", MupdatePort: 1, Serverlist: []string{"a"},
		Conf: map[string]string{"Bad Key": "x", "ok": "line\nbreak"}}.check(RoleBackend)
	if err == nil {
		t.Fatal("check passed")
	}
	for _, want := range []string{"not 127.x.y.z", "needs Master", "needs IMAPPort", "takes no MupdatePort",
		"Serverlist is for frontends", `"Bad Key"`, `"ok"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("check: %v; want it to say %s", err, want)
		}
	}
	if err := (Options{Addr: "127.0.0.1", Master: "127.0.0.1:3905", IMAPPort: 1}).check(RoleFrontend); err != nil {
		t.Errorf("check of good options: %v", err)
	}
}

// TestImapdConf checks that Conf overrides the defaults and that a
// frontend gets what makes it a frontend.
func TestImapdConf(t *testing.T) {
	i, err := prepare("/tmp/cyrustest-x", RoleFrontend, Options{Master: "127.0.0.1:3905", IMAPPort: 1143,
		Serverlist: []string{"b1", "b2"}, Conf: map[string]string{"unixhierarchysep": "yes"}}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	conf := i.imapdConf()
	for _, want := range []string{"\nunixhierarchysep: yes\n", "\nserverlist: b1 b2\n", "\nmupdate_server: 127.0.0.1:3905\n",
		"\nproxy_authname: proxy\n", "\nservername: 127.0.0.1:1143\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("imapd.conf lacks %q:\n%s", strings.TrimSpace(want), conf)
		}
	}
	if strings.Contains(conf, "proxyservers") || strings.Contains(conf, "unixhierarchysep: no") {
		t.Errorf("frontend imapd.conf has a backend's proxyservers or the overridden default:\n%s", conf)
	}
	if cc := i.cyrusConf(); !strings.Contains(cc, `listen="/tmp/cyrustest-x/conf/socket/mupdate"`) {
		t.Errorf("cyrus.conf has no mupdate slave on the unix socket:\n%s", cc)
	}
}
