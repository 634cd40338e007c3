package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/rookery/rookery/node"
)

func TestHelpListsVerbs(t *testing.T) {
	var out, errs bytes.Buffer
	if code := run([]string{"-h"}, &out, &errs); code != 0 {
		t.Errorf("-h: exit %d", code)
	}
	for _, want := range []string{"node status", "node where MAILBOX", "node check-config FILE", "node --version", "SIGHUP", "-imap", "-config"} {
		if !strings.Contains(errs.String(), want) {
			t.Errorf("-h lacks %q:\n%s", want, errs.String())
		}
	}
}

func TestVersion(t *testing.T) {
	var out, errs bytes.Buffer
	if code := run([]string{"--version"}, &out, &errs); code != 0 {
		t.Fatalf("--version: exit %d: %s", code, errs.String())
	}
	for _, want := range []string{"rookery node " + node.Version, runtime.Version(), runtime.GOOS + "/" + runtime.GOARCH} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--version lacks %q:\n%s", want, out.String())
		}
	}
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	goodUsers := file("users", "admin:{PLAIN}a\n")
	badUsers := file("badusers", "admin:{PLAIN}a\nbob secret\n")
	cases := []struct {
		name    string
		args    []string
		code    int
		want    []string
		wantErr []string
	}{
		{"valid", []string{file("ok.conf", "servername: a.test\nusers: "+goodUsers+"\n")}, 0, []string{"ok.conf: ok"}, nil},
		{"cyrus options and a typo", []string{file("typo.conf", "imap_lissten: 127.0.0.1:143\nconfigdirectory: /var/lib/imap\n")}, 0,
			[]string{"imap_lissten: not an option this node uses (did you mean imap_listen?); ignored", "configdirectory: not an option this node uses; ignored", "typo.conf: ok"}, nil},
		{"invalid values", []string{file("bad.conf", "servername: a!b\nmupdate_listen: nohost\nmaxliteral: many\nroles: master,frontdoor\n")}, 1,
			[]string{`servername: "a!b"`, `mupdate_listen: "nohost": want host:port`, `maxliteral: "many": not a number`, `roles: unknown role "frontdoor"`, "5 problem(s)"}, nil},
		{"malformed line", []string{file("lines.conf", "servername a.test\n")}, 1, []string{"lines.conf:1: want \"key: value\""}, nil},
		{"bad users file", []string{file("u.conf", "users: "+badUsers+"\n")}, 1, []string{badUsers + ":2: want name:{SCHEME}secret"}, nil},
		{"missing users file", []string{file("nu.conf", "users: "+filepath.Join(dir, "nope")+"\n")}, 1, []string{"users: auth: open"}, nil},
		{"missing file", []string{filepath.Join(dir, "absent.conf")}, 2, nil, []string{"no such file"}},
		{"no file", nil, 2, nil, []string{"usage: node check-config FILE"}},
		{"two files", []string{"a", "b"}, 2, nil, []string{"usage"}},
	}
	for _, c := range cases {
		var out, errs bytes.Buffer
		code := run(append([]string{"check-config"}, c.args...), &out, &errs)
		if code != c.code {
			t.Errorf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", c.name, code, c.code, out.String(), errs.String())
		}
		for _, w := range c.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s: stdout lacks %q:\n%s", c.name, w, out.String())
			}
		}
		for _, w := range c.wantErr {
			if !strings.Contains(errs.String(), w) {
				t.Errorf("%s: stderr lacks %q:\n%s", c.name, w, errs.String())
			}
		}
	}
}
