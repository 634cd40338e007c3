// Package slapdtest runs a real OpenLDAP slapd for tests, with its
// database and configuration in a temporary folder.
package slapdtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rookery/rookery/internal/cyrustest"
)

const (
	// Base is the directory's suffix; users are uid=NAME,ou=people,Base.
	Base = "dc=example,dc=com"
	// AdminDN and AdminPassword are the directory's root identity.
	AdminDN       = "cn=admin," + Base
	AdminPassword = "adminpw"
)

// Start runs slapd (failing, or skipping with ROOKERY_SKIP_CYRUS=1, when
// Debian's slapd package is not installed) on a free loopback port with users (uid: password). It
// returns the ldap:// URI and a stop function, also called at cleanup.
func Start(t testing.TB, users map[string]string) (uri string, stop func()) {
	t.Helper()
	bin := "/usr/sbin/slapd"
	cyrustest.RequireBinary(t, bin, "slapd")
	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	if err := os.Mkdir(db, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "slapd.conf")
	write(t, conf, fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile %s/slapd.pid
database mdb
maxsize 10485760
suffix "%s"
rootdn "%s"
rootpw %s
directory %s
`, dir, Base, AdminDN, AdminPassword, db))
	var ldif strings.Builder
	fmt.Fprintf(&ldif, "dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n", Base)
	fmt.Fprintf(&ldif, "dn: ou=people,%s\nobjectClass: organizationalUnit\nou: people\n\n", Base)
	names := make([]string, 0, len(users))
	for n := range users {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&ldif, "dn: uid=%s,ou=people,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\nuserPassword: %s\n\n", n, Base, n, n, n, users[n])
	}
	data := filepath.Join(dir, "data.ldif")
	write(t, data, ldif.String())
	if out, err := exec.Command("/usr/sbin/slapadd", "-f", conf, "-l", data).CombinedOutput(); err != nil {
		t.Fatalf("slapadd: %v\n%s", err, out)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	uri = "ldap://" + addr
	cmd := exec.Command(bin, "-f", conf, "-h", uri+"/", "-d", "0")
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cmd.Process.Kill()
			cmd.Wait()
			logf.Close()
			if t.Failed() {
				b, _ := os.ReadFile(logf.Name())
				t.Logf("slapd log:\n%s", b)
			}
		})
	}
	t.Cleanup(stop)
	for deadline := time.Now().Add(15 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return uri, stop
		}
		if time.Now().After(deadline) {
			stop()
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("slapd did not listen on %s:\n%s", addr, b)
		}
		time.Sleep(20 * time.Millisecond) // polling for the port, bounded above
	}
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
