package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Credentials every Rookery node of the bench knows.
const (
	adminUser, adminPass     = "admin", "adminpw"
	mupdateUser, mupdatePass = "mupdate", "mupdatepw"
	proxyUser, proxyPass     = "proxy", "proxypw"
	userPass                 = "benchpw"
)

// process is one node running as a child process, so that its memory is
// its own and not mixed with the clients'.
type process struct {
	name  string
	cmd   *exec.Cmd
	imap  string // its IMAP address, "" for the master
	admin string // its admin HTTP address (/metrics)
	done  chan struct{}
}

// murder is a master, the backends and one frontend, each a process.
type murder struct {
	dir      string
	master   *process
	backends []*process
	frontend *process
	procs    []*process // every node, in start order
}

// startMurder builds cmd/node into dir and starts a master, nBackends
// backends (each on its own 127.0.0.x, so that the frontend's
// connections to them do not share one ephemeral port range) and a
// frontend with a replica. users get an INBOX on the backends in turn.
// On error nothing is left running.
func startMurder(ctx context.Context, dir, nodeBin string, nBackends, maxConns int, users []string, logw io.Writer) (_ *murder, err error) {
	m := &murder{dir: dir}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	if err := writeUsers(filepath.Join(dir, "users"), users); err != nil {
		return nil, err
	}
	mupdateAddr, err := freeAddr("127.0.0.1")
	if err != nil {
		return nil, err
	}
	if m.master, err = m.start(nodeBin, logw, "master", map[string]string{
		"roles": "master", "mupdate_listen": mupdateAddr, "imap_listen": "",
	}); err != nil {
		return nil, err
	}
	var backendAddrs []string
	for i := range nBackends {
		name := fmt.Sprintf("be%d", i+1)
		host := fmt.Sprintf("127.0.0.%d", 10+i)
		imapAddr, err := freeAddr(host)
		if err != nil {
			return nil, err
		}
		adminAddr, err := freeAddr(host)
		if err != nil {
			return nil, err
		}
		p, err := m.start(nodeBin, logw, name, map[string]string{
			"roles": "backend", "imap_listen": imapAddr, "admin_listen": adminAddr,
			"mupdate_server": mupdateAddr, "mupdate_authname": mupdateUser, "mupdate_password": mupdatePass,
			"proxyservers": proxyUser, "imap_connections_max": strconv.Itoa(maxConns),
		})
		if err != nil {
			return nil, err
		}
		p.imap, p.admin = imapAddr, adminAddr
		m.backends = append(m.backends, p)
		backendAddrs = append(backendAddrs, name+"="+imapAddr)
	}
	feIMAP, err := freeAddr("127.0.0.1")
	if err != nil {
		return nil, err
	}
	feAdmin, err := freeAddr("127.0.0.1")
	if err != nil {
		return nil, err
	}
	if m.frontend, err = m.start(nodeBin, logw, "fe", map[string]string{
		"roles": "frontend,replica", "imap_listen": feIMAP, "admin_listen": feAdmin,
		"mupdate_server": mupdateAddr, "mupdate_authname": mupdateUser, "mupdate_password": mupdatePass,
		"proxy_authname": proxyUser, "proxy_password": proxyPass, "allowplaintext": "yes",
		"backend_addrs": strings.Join(backendAddrs, " "), "frontend_extensions": "SEARCHRES CONTEXT=SEARCH CONTEXT=SORT",
		"imap_connections_max": strconv.Itoa(maxConns),
	}); err != nil {
		return nil, err
	}
	m.frontend.imap, m.frontend.admin = feIMAP, feAdmin

	fmt.Fprintf(logw, "creating %d INBOXes ...\n", len(users))
	for i, b := range m.backends {
		var mine []string
		for j := i; j < len(users); j += len(m.backends) {
			mine = append(mine, users[j])
		}
		if err := createInboxes(ctx, b.imap, mine); err != nil {
			return nil, fmt.Errorf("sessionbench: %s: %w", b.name, err)
		}
	}
	// The frontend serves the users once its replica has their INBOXes;
	// the last one made is the last to arrive.
	last := users[len(users)-1]
	err = poll(ctx, 60*time.Second, func() error {
		return selectOnce(feIMAP, last)
	})
	if err != nil {
		return nil, fmt.Errorf("sessionbench: waiting for the frontend to serve %s: %w", last, err)
	}
	return m, nil
}

// start runs one node with the common settings and kv over them, and
// waits for its listeners.
func (m *murder) start(nodeBin string, logw io.Writer, name string, kv map[string]string) (*process, error) {
	conf := map[string]string{
		"servername": name, "data": filepath.Join(m.dir, name), "users": filepath.Join(m.dir, "users"),
		"admins": adminUser + " " + mupdateUser, "failedloginpause": "0", "log_level": "warn",
		"pop3_listen": "", "lmtp_listen": "", "admin_listen": "", "mupdate_listen": "",
	}
	for k, v := range kv {
		conf[k] = v
	}
	var b strings.Builder
	for k, v := range conf {
		fmt.Fprintf(&b, "%s: %s\n", k, v)
	}
	file := filepath.Join(m.dir, name+".conf")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		return nil, fmt.Errorf("sessionbench: %w", err)
	}
	cmd := exec.Command(nodeBin, "-config", file)
	cmd.Stdout, cmd.Stderr = logw, prefixWriter{logw, name + ": "}
	// Its own process group, so that a Ctrl-C at the terminal reaches
	// the bench, which stops the nodes in order; a bench that is killed
	// takes them with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("sessionbench: starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	m.procs = append(m.procs, p)
	var wait []string
	for _, k := range []string{"imap_listen", "mupdate_listen", "admin_listen"} {
		if conf[k] != "" {
			wait = append(wait, conf[k])
		}
	}
	for _, addr := range wait {
		err := poll(context.Background(), 30*time.Second, func() error {
			select {
			case <-p.done:
				return errors.New("exited")
			default:
			}
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("sessionbench: %s not listening on %s: %w", name, addr, err)
		}
	}
	return p, nil
}

// Close stops every node, the last started (the frontend) first, and
// removes their data.
func (m *murder) Close() {
	for _, p := range slices.Backward(m.procs) {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(40 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	_ = os.RemoveAll(m.dir)
}

func writeUsers(path string, users []string) error {
	var b strings.Builder
	for _, u := range [][2]string{{adminUser, adminPass}, {mupdateUser, mupdatePass}, {proxyUser, proxyPass}} {
		fmt.Fprintf(&b, "%s:{PLAIN}%s\n", u[0], u[1])
	}
	for _, u := range users {
		fmt.Fprintf(&b, "%s:{PLAIN}%s\n", u, userPass)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("sessionbench: %w", err)
	}
	return nil
}

// freeAddr returns host:port with a port free on host a moment ago.
func freeAddr(host string) (string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("sessionbench: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// poll retries f until it succeeds, ctx ends or limit passes.
func poll(ctx context.Context, limit time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// prefixWriter prefixes each write (a node's log lines) with a name.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, p.prefix+string(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}
