package membership

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/hashicorp/memberlist"
)

// Meta is what a node announces about itself in its gossip metadata.
type Meta struct {
	// Cluster names the murder; members of another cluster are ignored.
	Cluster string
	// Server is the node's server name, unique in the cluster; it is also
	// its member name.
	Server string
	// Roles the node runs ("master", "backend", ...).
	Roles []string
	// Advertised listener addresses, host:port; empty when the node does
	// not serve that protocol.
	MUPDATE, IMAP, POP3, LMTP string
	// Version of the node's software.
	Version string
	// Storage is empty while the node's stores take writes, else why
	// not: "full" (until space is freed) or "failed" (until a restart).
	Storage string
}

// HasRole reports whether the node announces role r.
func (m Meta) HasRole(r string) bool {
	return slices.Contains(m.Roles, r)
}

// The metadata is a version byte and then tag, length, value fields:
// memberlist caps it at 512 bytes, and unknown tags are skipped so a newer
// node can add fields older ones ignore. A host that two or more
// addresses share is written once (tagHost), the addresses as ":port".
const metaVersion = 1

const (
	tagCluster byte = iota + 1
	tagServer
	tagRoles
	tagMUPDATE
	tagIMAP
	tagPOP3
	tagLMTP
	tagVersion
	tagLeaving // present, empty, while the node leaves on purpose
	tagHost
	tagStorage
)

// encodeMeta encodes m; leaving marks a node on its way out, so members
// can tell a departure from a failure.
func encodeMeta(m Meta, leaving bool) ([]byte, error) {
	if strings.Contains(strings.Join(m.Roles, ""), ",") {
		return nil, errors.New("membership: a role must not contain ','")
	}
	b := []byte{metaVersion}
	field := func(tag byte, v string) {
		if v == "" {
			return
		}
		b = append(b, tag)
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	field(tagCluster, m.Cluster)
	field(tagServer, m.Server)
	field(tagRoles, strings.Join(m.Roles, ","))
	addrs := []string{m.MUPDATE, m.IMAP, m.POP3, m.LMTP}
	host := sharedHost(addrs)
	field(tagHost, host)
	for i, tag := range []byte{tagMUPDATE, tagIMAP, tagPOP3, tagLMTP} {
		if h, port, err := net.SplitHostPort(addrs[i]); err == nil && host != "" && h == host {
			addrs[i] = ":" + port
		}
		field(tag, addrs[i])
	}
	field(tagVersion, m.Version)
	field(tagStorage, m.Storage)
	if leaving {
		b = append(b, tagLeaving, 0)
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("membership: metadata is %d bytes, over memberlist's %d", len(b), memberlist.MetaMaxSize)
	}
	return b, nil
}

// sharedHost is the host of two or more of addrs, if any. None is picked
// when an address has no host: ":port" would then be ambiguous.
func sharedHost(addrs []string) string {
	count := map[string]int{}
	best := ""
	for _, a := range addrs {
		if a == "" {
			continue
		}
		h, _, err := net.SplitHostPort(a)
		if err != nil || h == "" {
			return ""
		}
		count[h]++
		if count[h] >= 2 && count[h] > count[best] {
			best = h
		}
	}
	return best
}

// decodeMeta reverses encodeMeta.
func decodeMeta(b []byte) (m Meta, leaving bool, err error) {
	if len(b) == 0 {
		return m, false, errors.New("membership: no metadata")
	}
	if b[0] != metaVersion {
		return m, false, fmt.Errorf("membership: metadata version %d, want %d", b[0], metaVersion)
	}
	b = b[1:]
	var host string
	for len(b) > 0 {
		tag := b[0]
		n, size := binary.Uvarint(b[1:])
		if size <= 0 || n > uint64(len(b)-1-size) {
			return m, false, errors.New("membership: truncated metadata")
		}
		v := string(b[1+size : 1+size+int(n)])
		b = b[1+size+int(n):]
		switch tag {
		case tagCluster:
			m.Cluster = v
		case tagServer:
			m.Server = v
		case tagRoles:
			m.Roles = strings.Split(v, ",")
		case tagMUPDATE:
			m.MUPDATE = v
		case tagIMAP:
			m.IMAP = v
		case tagPOP3:
			m.POP3 = v
		case tagLMTP:
			m.LMTP = v
		case tagVersion:
			m.Version = v
		case tagLeaving:
			leaving = true
		case tagHost:
			host = v
		case tagStorage:
			m.Storage = v
		}
	}
	if host != "" {
		for _, a := range []*string{&m.MUPDATE, &m.IMAP, &m.POP3, &m.LMTP} {
			if port, ok := strings.CutPrefix(*a, ":"); ok {
				*a = net.JoinHostPort(host, port)
			}
		}
	}
	return m, leaving, nil
}
