package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rookery/rookery/listeners/admin"
)

// adminServer runs an admin listener answering with fixed state.
func adminServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := admin.NewServer(admin.Config{
		Status: func(context.Context) (*admin.Status, error) {
			// Made at request time, so "1m0s ago" holds when printed.
			since := time.Now().Add(-time.Minute)
			return &admin.Status{
				Node: "fe1", Cluster: "murder", Version: "0.1.0", Roles: []string{"frontend", "replica"},
				Master: "127.0.0.1:3905", Mailboxes: 3,
				Members: []admin.Member{
					{Name: "be1", Addr: "127.0.0.1:7001", Roles: []string{"backend"}, Health: "alive", Since: since, IMAP: "127.0.0.1:1143"},
					{Name: "be2", Addr: "127.0.0.1:7002", Roles: []string{"backend"}, Health: "failed", Since: since},
				},
				Replica: &admin.Replica{Master: "127.0.0.1:3905", Connected: true, AppliedSeq: 9, LagSeconds: 0.2, LastSync: since},
			}, nil
		},
		Where: func(_ context.Context, name string) (*admin.Where, error) {
			w := &admin.Where{Mailbox: name, MasterAddr: "127.0.0.1:3905"}
			switch name {
			case "user.bob":
				e := &admin.Entry{Kind: "MAILBOX", Location: "be1!default"}
				w.Master, w.Local, w.Backend, w.BackendAddr, w.BackendUp = e, e, "be1", "127.0.0.1:1143", true
			case "user.eve":
				w.Master = &admin.Entry{Kind: "MAILBOX", Location: "be2!default"}
				w.Backend, w.BackendAddr, w.BackendError = "be2", "127.0.0.1:1144", "connection refused"
			}
			return w, nil
		},
	})
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return ln.Addr().String()
}

func TestStatusCommand(t *testing.T) {
	addr := adminServer(t)
	var out, errs bytes.Buffer
	if code := status(&out, &errs, []string{"--admin", addr}); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	for _, want := range []string{
		"node       fe1", "roles      frontend, replica", "master     127.0.0.1:3905",
		"replica    connected to 127.0.0.1:3905, applied seq 9, lag 0.2s, last sync 1m0s ago",
		"MEMBER  HEALTH  SINCE", "be1     alive   1m0s ago  backend  127.0.0.1:7001  -        127.0.0.1:1143",
		"be2     failed",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	// A URL works as well as host:port.
	out.Reset()
	if code := status(&out, &errs, []string{"--admin", "http://" + addr + "/"}); code != 0 || !strings.Contains(out.String(), "fe1") {
		t.Errorf("URL form: exit %d: %s %s", code, out.String(), errs.String())
	}
}

func TestWhereCommand(t *testing.T) {
	addr := adminServer(t)
	for _, c := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"user.bob", "--admin", addr}, 0, []string{
			"mailbox    user.bob", "master     MAILBOX be1!default (master at 127.0.0.1:3905)",
			"this node  MAILBOX be1!default", "backend    be1 at 127.0.0.1:1143: up"}},
		{[]string{"--admin", addr, "user.eve"}, 0, []string{
			"this node  no entry", "backend    be2 at 127.0.0.1:1144: DOWN (connection refused)"}},
		{[]string{"--admin", addr, "user.nobody"}, 1, []string{"master     no entry", "this node  no entry"}},
	} {
		var out, errs bytes.Buffer
		if code := where(&out, &errs, c.args); code != c.code {
			t.Errorf("%v: exit %d, want %d: %s", c.args, code, c.code, errs.String())
		}
		for _, want := range c.want {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%v: output lacks %q:\n%s", c.args, want, out.String())
			}
		}
	}
	var out, errs bytes.Buffer
	if code := where(&out, &errs, []string{"--admin", addr}); code != 2 || !strings.Contains(errs.String(), "usage") {
		t.Errorf("no mailbox: exit %d: %s", code, errs.String())
	}
	if code := where(&out, &errs, []string{"a", "b", "--admin", addr}); code != 2 {
		t.Errorf("two mailboxes: exit %d", code)
	}
}

// TestAdminUnreachable: a node that is not running is a clear failure.
func TestAdminUnreachable(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	if code := run([]string{"status", "--admin", addr}, io.Discard, io.Discard); code != 1 {
		t.Errorf("status: exit %d", code)
	}
	if code := run([]string{"where", "user.bob", "--admin", addr}, io.Discard, io.Discard); code != 1 {
		t.Errorf("where: exit %d", code)
	}
	if code := run([]string{"status", "extra"}, io.Discard, io.Discard); code != 2 {
		t.Errorf("status with an argument: exit %d", code)
	}
}
