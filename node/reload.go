package node

import (
	"bytes"
	"errors"
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/rookery/rookery/listeners/auth"
)

// ReloadUsers re-reads the users file now (SIGHUP) and logs what changed.
// A file that does not load leaves the users in effect; every problem in
// it is logged.
func (n *Node) ReloadUsers() {
	c, err := n.users.Reload()
	n.logUsersReload(c, err)
}

// ReloadCertificate re-reads tls_server_cert and tls_server_key (SIGHUP)
// and serves them to every TLS handshake from now on; sessions already
// under TLS keep theirs. Files that do not load leave the certificate in
// effect, and the log says why.
func (n *Node) ReloadCertificate() {
	if n.certs == nil {
		return
	}
	old := n.certs.cur.Load()
	cert, err := n.certs.load()
	if err != nil {
		n.log.Error("TLS certificate not reloaded; the one loaded before stays in effect",
			"file", n.certs.certFile, "key", n.certs.keyFile, "err", err)
		return
	}
	leaf := cert.Leaf // set by LoadX509KeyPair since Go 1.23
	if old != nil && bytes.Equal(old.Certificate[0], cert.Certificate[0]) {
		n.log.Info("TLS certificate unchanged", "file", n.certs.certFile, "serial", leaf.SerialNumber.String())
		return
	}
	n.log.Info("TLS certificate reloaded", "file", n.certs.certFile, "subject", leaf.Subject.String(),
		"serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter)
	if time.Now().After(leaf.NotAfter) {
		n.log.Warn("TLS certificate has expired", "file", n.certs.certFile, "not_after", leaf.NotAfter)
	}
}

// pollUsers picks up a changed users file without a signal.
func (n *Node) pollUsers(every time.Duration) {
	defer n.servers.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-n.stopPoll:
			return
		case <-t.C:
			if c, changed, err := n.users.ReloadIfChanged(); changed {
				n.logUsersReload(c, err)
			}
		}
	}
}

func (n *Node) logUsersReload(c auth.UsersChange, err error) {
	file := n.cfg.UsersPath()
	if err == nil {
		n.log.Info("users file reloaded", "file", file, "users", c.Total,
			"added", len(c.Added), "removed", len(c.Removed), "changed", len(c.Changed))
		return
	}
	var fe *auth.UsersFileError
	if errors.As(err, &fe) {
		for _, p := range fe.Problems {
			n.log.Error("users file problem", "file", file, "problem", p)
		}
	}
	n.log.Error("users file not reloaded; the users loaded before stay in effect", "file", file, "users", n.users.Len(), "err", err)
}

// ChangedOptions names, by their config-file keys and sorted, the options
// whose value differs between two sets of key/values (a config file with
// the flags over it, as read at start and again at a reload). A key
// counts only if changing it alone changes the configuration: rewriting
// "timeout: 30" as "timeout: 30 " or adding a key with its default value
// does not, and neither do keys the node does not use.
func ChangedOptions(before, after map[string]string) []string {
	base := DefaultConfig()
	_, _ = base.Apply(before)
	var changed []string
	for _, k := range slices.Sorted(maps.Keys(union(before, after))) {
		v0, in0 := before[k]
		v1, in1 := after[k]
		if in0 == in1 && v0 == v1 {
			continue
		}
		kv := maps.Clone(before)
		delete(kv, k)
		if in1 {
			kv[k] = v1
		}
		c := DefaultConfig()
		_, _ = c.Apply(kv)
		if !reflect.DeepEqual(base, c) {
			changed = append(changed, k)
		}
	}
	return changed
}

func union(a, b map[string]string) map[string]string {
	u := maps.Clone(a)
	if u == nil {
		u = map[string]string{}
	}
	maps.Copy(u, b)
	return u
}
