package node

import (
	"strings"
	"testing"
)

// TestValidate: each bad setting is named in the error, all at once.
func TestValidate(t *testing.T) {
	cases := []struct {
		kv   map[string]string
		want []string
	}{
		{map[string]string{"roles": "backend", "mupdate_server": "mupdate.example.com"}, []string{"mupdate_server", "mupdate_authname"}},
		{map[string]string{"roles": "backend", "gossip_listen": "127.0.0.1:0"}, []string{"mupdate_authname"}},
		{map[string]string{"roles": "replica"}, []string{"mupdate_server", "mupdate_authname"}},
		{map[string]string{"roles": "master,replica", "mupdate_server": "a:1", "mupdate_authname": "x"}, []string{"either the master or a replica"}},
		{map[string]string{"roles": "frontend,backend"}, []string{"separate nodes", "add replica"}},
		{map[string]string{"maxliteral": "200000", "gossip_preset": "moon"}, []string{"maxliteral", "gossip_preset"}},
		{map[string]string{"unixhierarchysep": "maybe", "timeout": "soon"}, []string{"unixhierarchysep", "timeout"}},
		{map[string]string{"backend_addrs": "cy1=127.0.0.2 cy2"}, []string{"not host:port", "want NAME=IMAP"}},
		{map[string]string{"roles": "frontend,replica", "mupdate_server": "m:3905", "mupdate_authname": "x", "password_check": "users, sasldb"}, []string{`password_check: unknown method "sasldb"`}},
		{map[string]string{"frontend_extensions": "searchres NOTIFY"}, []string{`frontend_extensions: "NOTIFY" cannot be announced`}},
		{map[string]string{"virtdomains": "userid", "altnamespace": "yes"}, []string{`virtdomains: "userid": not supported`, `altnamespace: "yes": not supported`}},
		{map[string]string{"maxlogins_per_user": "-1", "maxconns_per_host": "many"}, []string{"maxlogins_per_user", "maxconns_per_host"}},
		{map[string]string{"login_timeout": "0"}, []string{"login_timeout: must be at least 1s"}},
	}
	for _, c := range cases {
		cfg := DefaultConfig()
		_, err := cfg.Apply(c.kv)
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil {
			t.Errorf("%v: no error", c.kv)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q lacks %q", c.kv, err, w)
			}
		}
	}
	cfg := DefaultConfig()
	if _, err := cfg.Apply(map[string]string{"roles": "backend", "mupdate_server": "m:3905", "mupdate_authname": "mupdate",
		"be1_password": "x", "backend_addrs": "cy1.example=127.0.0.2:143,127.0.0.2:110,127.0.0.2:2003 cy2=127.0.0.3:143"}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("valid backend config: %v", err)
	}
	if cfg.ServerPasswords["be1"] != "x" {
		t.Errorf("<shorthost>_password not read: %v", cfg.ServerPasswords)
	}
	if a := cfg.BackendAddrs["cy1.example"]; a != [3]string{"127.0.0.2:143", "127.0.0.2:110", "127.0.0.2:2003"} {
		t.Errorf("backend_addrs: %v", cfg.BackendAddrs)
	}
}
