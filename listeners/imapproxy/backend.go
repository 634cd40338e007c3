package imapproxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rookery/rookery/listeners/frontend"
)

// backend is one session's connection to one backend server, logged in as
// the proxy user on behalf of the session's user. Only the session's
// goroutine uses it, except during IDLE (see idle.go).
type backend struct {
	server string
	conn   net.Conn
	// r and w are nil while the session waits without them (idlebuf.go).
	r    *bufio.Reader
	w    *bufio.Writer
	pr   pieceReader
	caps map[string]bool // upper case
	ntag int
	// enabled holds the extensions sent to this backend with ENABLE.
	enabled map[string]bool
	// timeout bounds each read and write of the socket; zero (during
	// login, bounded as a whole) leaves the deadline as it is.
	timeout time.Duration
	// mu guards idling and inResponse, which the session goroutine and
	// IDLE's client reader both act on, each setting the read deadline
	// they imply.
	mu sync.Mutex
	// idling is set while the backend is in IDLE: its reads between
	// responses then have no deadline (news may take any time to come).
	idling bool
	// inResponse is set while a response is being read: a backend that
	// stops inside one is dropped, in IDLE too.
	inResponse bool
	// broken is set once an I/O error or a BYE was seen; the connection
	// is then only closed.
	broken bool
}

// backendError is a failure of a backend connection; it costs the client
// its command (NO) but not its session, unless the backend was selected.
type backendError struct {
	server string
	err    error
}

func (e *backendError) Error() string {
	return fmt.Sprintf("imapproxy: backend %s: %v", e.server, e.err)
}

func (e *backendError) Unwrap() error { return e.err }

// dialBackend connects to the backend at addr and authenticates with SASL
// PLAIN as authname for user (the authorization id), as a Cyrus frontend
// does. Everything up to the end of authentication is bounded by timeout.
//
// With tlsConf it takes up the backend's STARTTLS, as Cyrus's backend
// connection does: when the server name asks for it ("host:port/tls",
// then never logging in without it) or when the backend offers no
// plaintext mechanism before TLS (a backend without allowplaintext).
func dialBackend(ctx context.Context, server, addr string, tlsConf *tls.Config, user, authname, password string, timeout, ioTimeout time.Duration) (*backend, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &backendError{server, err}
	}
	b := newBackend(server, conn)
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if tlsConf != nil && tlsConf.ServerName == "" {
		tlsConf = tlsConf.Clone()
		tlsConf.ServerName, _, _ = net.SplitHostPort(addr)
	}
	if err := b.login(user, authname, password, tlsConf, frontend.WantsTLS(server)); err != nil {
		conn.Close()
		return nil, &backendError{server, err}
	}
	_ = conn.SetDeadline(time.Time{})
	b.timeout = ioTimeout
	b.caps = sharedCaps(b.caps)
	return b, nil
}

// capSets holds one copy of each capability set backends announced:
// every connection to a backend has the same, some 4 KiB as a map for a
// Rookery backend's 60-odd, and each session keeps one per backend
// connection. A set is only read once its connection has logged in.
// Backends are few, but what they announce is theirs to choose, so the
// number kept is bounded.
var capSets struct {
	sync.Mutex
	m map[string]map[string]bool
}

const maxCapSets = 64

// sharedCaps returns the kept set equal to caps, keeping caps if there
// is none and room for it.
func sharedCaps(caps map[string]bool) map[string]bool {
	key := strings.Join(slices.Sorted(maps.Keys(caps)), " ")
	capSets.Lock()
	defer capSets.Unlock()
	if m, ok := capSets.m[key]; ok {
		return m
	}
	if capSets.m == nil {
		capSets.m = map[string]map[string]bool{}
	}
	if len(capSets.m) < maxCapSets {
		capSets.m[key] = caps
	}
	return caps
}

// newBackend wraps conn; its timeout is left for the caller to set.
func newBackend(server string, conn net.Conn) *backend {
	b := &backend{
		server:  server,
		conn:    conn,
		caps:    map[string]bool{},
		enabled: map[string]bool{},
		pr:      pieceReader{max: maxBackendLine},
	}
	b.takeReader()
	b.takeWriter()
	return b
}

// backendIO arms the backend's deadline before every read and write of
// its socket, so that the backend timeout counts from the last byte that
// moved: an answer that keeps coming is never cut however long it takes,
// and a backend that stops anywhere (inside a line, inside a literal,
// between responses) is dropped one timeout after its last byte, not
// waited for without bound.
type backendIO struct{ b *backend }

func (x backendIO) Read(p []byte) (int, error) {
	x.b.readDeadline()
	return x.b.conn.Read(p)
}

func (x backendIO) Write(p []byte) (int, error) {
	x.b.writeDeadline()
	return x.b.conn.Write(p)
}

// errLoginRefused is a backend's NO or BAD to the proxy's AUTHENTICATE.
var errLoginRefused = errors.New("login refused")

// maxBackendLine bounds the backend lines the proxy parses itself (relayed
// lines are streamed and have no bound).
const maxBackendLine = 1 << 20

func (b *backend) login(user, authname, password string, tlsConf *tls.Config, requireTLS bool) error {
	greet, err := b.pr.next()
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	g := string(greet)
	if !strings.HasPrefix(g, "* OK") {
		return fmt.Errorf("greeting %q", g)
	}
	if !b.takeCaps(g) {
		if err := b.capability(); err != nil {
			return err
		}
	}
	switch {
	case tlsConf != nil && b.caps["STARTTLS"] && (requireTLS || !b.caps["AUTH=PLAIN"]):
		if err := b.startTLS(tlsConf); err != nil {
			return err
		}
	case requireTLS && tlsConf == nil:
		return errors.New("server name asks for TLS (/tls), which this frontend does not speak to backends")
	case requireTLS:
		return errors.New("server name asks for TLS (/tls), and the backend offers no STARTTLS")
	}
	if !b.caps["AUTH=PLAIN"] {
		if tlsConf == nil && b.caps["STARTTLS"] {
			return errors.New("no AUTH=PLAIN offered before TLS, and no TLS to backends here")
		}
		return errors.New("no AUTH=PLAIN offered")
	}
	ir := base64.StdEncoding.EncodeToString([]byte(user + "\x00" + authname + "\x00" + password))
	if b.caps["SASL-IR"] {
		fmt.Fprintf(b.w, "A01 AUTHENTICATE PLAIN %s\r\n", ir)
	} else {
		b.w.WriteString("A01 AUTHENTICATE PLAIN\r\n")
	}
	if err := b.w.Flush(); err != nil {
		return err
	}
	for {
		line, err := b.pr.next()
		if err != nil {
			return fmt.Errorf("authenticate: %w", err)
		}
		l := string(line)
		switch {
		case strings.HasPrefix(l, "+"):
			fmt.Fprintf(b.w, "%s\r\n", ir)
			if err := b.w.Flush(); err != nil {
				return err
			}
		case strings.HasPrefix(l, "A01 "):
			status, text := splitStatus(l[4:])
			if status != "OK" {
				return fmt.Errorf("%w: %s %s", errLoginRefused, status, text)
			}
			clear(b.caps)
			if !b.takeCaps(text) {
				return b.capability()
			}
			return nil
		}
	}
}

// startTLS takes up the backend's STARTTLS (RFC 3501 6.2.1) and asks for
// its capabilities again: what it offered in the clear no longer counts.
func (b *backend) startTLS(conf *tls.Config) error {
	b.w.WriteString("S01 STARTTLS\r\n")
	if err := b.w.Flush(); err != nil {
		return err
	}
	for {
		line, err := b.pr.next()
		if err != nil {
			return fmt.Errorf("starttls: %w", err)
		}
		if l, ok := strings.CutPrefix(string(line), "S01 "); ok {
			if status, text := splitStatus(l); status != "OK" {
				return fmt.Errorf("starttls: %s %s", status, text)
			}
			break
		}
	}
	if b.r.Buffered() > 0 {
		return errors.New("starttls: backend sent more after its reply")
	}
	tc := tls.Client(b.conn, conf)
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("starttls: %w", err)
	}
	b.conn = tc
	clear(b.caps)
	return b.capability()
}

// takeCaps reads a [CAPABILITY ...] code out of an OK text.
func (b *backend) takeCaps(text string) bool {
	code, ok := respCode(text, "CAPABILITY")
	if !ok {
		return false
	}
	for _, c := range strings.Fields(code) {
		b.caps[strings.ToUpper(c)] = true
	}
	return true
}

func (b *backend) capability() error {
	b.w.WriteString("C01 CAPABILITY\r\n")
	if err := b.w.Flush(); err != nil {
		return err
	}
	for {
		line, err := b.pr.next()
		if err != nil {
			return fmt.Errorf("capability: %w", err)
		}
		l := string(line)
		if rest, ok := strings.CutPrefix(l, "* CAPABILITY "); ok {
			for _, c := range strings.Fields(rest) {
				b.caps[strings.ToUpper(c)] = true
			}
		}
		if strings.HasPrefix(l, "C01 ") {
			if status, text := splitStatus(l[4:]); status != "OK" {
				return fmt.Errorf("capability: %s %s", status, text)
			}
			return nil
		}
	}
}

// splitStatus splits "OK text" into its status word (upper case) and text.
func splitStatus(s string) (status, text string) {
	status, text, _ = strings.Cut(s, " ")
	return strings.ToUpper(status), text
}

// respCode returns the text of the response code "[NAME text]" in a
// response, NAME matched in any case. The search folds ASCII only: a
// Unicode-aware upper-casing may change the line's length (invalid UTF-8
// becomes U+FFFD), and an index into it would not fit the original.
func respCode(resp, name string) (string, bool) {
	open := "[" + name + " "
	for i := 0; i+len(open) <= len(resp); i++ {
		if !strings.EqualFold(resp[i:i+len(open)], open) {
			continue
		}
		text, _, ok := strings.Cut(resp[i+len(open):], "]")
		return text, ok
	}
	return "", false
}

// nextTag returns a fresh tag for a command the proxy makes up.
func (b *backend) nextTag() string {
	b.ntag++
	return "PROXY" + strconv.Itoa(b.ntag)
}

// readDeadline arms the read deadline for one read of the socket.
func (b *backend) readDeadline() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.armRead()
}

func (b *backend) armRead() {
	switch {
	case b.timeout == 0:
	case b.idling && !b.inResponse:
		_ = b.conn.SetReadDeadline(time.Time{})
	default:
		_ = b.conn.SetReadDeadline(time.Now().Add(b.timeout))
	}
}

// setIdling says whether the backend is in IDLE, and re-arms a read
// that may be waiting already.
func (b *backend) setIdling(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.idling = on
	b.armRead()
}

// setInResponse says whether a response is being read; only the session
// goroutine calls it.
func (b *backend) setInResponse(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inResponse = on
}

func (b *backend) writeDeadline() {
	if b.timeout > 0 {
		_ = b.conn.SetWriteDeadline(time.Now().Add(b.timeout))
	}
}

// flush sends what is buffered.
func (b *backend) flush() error {
	if err := b.w.Flush(); err != nil {
		return b.fail(err)
	}
	return nil
}

// fail marks the connection broken and wraps err.
func (b *backend) fail(err error) error {
	b.broken = true
	var be *backendError
	if errors.As(err, &be) {
		return err
	}
	return &backendError{b.server, err}
}

// simple sends a command the proxy made up and collects its responses in
// memory; it is for commands with short answers (NOOP, UNSELECT, ENABLE).
// Untagged responses are returned whole, literals inline.
func (b *backend) simple(cmd string) (untagged []string, status, text string, err error) {
	tag := b.nextTag()
	b.w.WriteString(tag + " " + cmd + "\r\n")
	if err := b.flush(); err != nil {
		return nil, "", "", err
	}
	for {
		resp, err := b.readResponse()
		if err != nil {
			return untagged, "", "", err
		}
		if rest, ok := strings.CutPrefix(resp, tag+" "); ok {
			status, text = splitStatus(rest)
			return untagged, status, text, nil
		}
		untagged = append(untagged, resp)
	}
}

// readResponse reads one whole response, literals inline, bounded by
// maxBackendLine per piece and literal.
func (b *backend) readResponse() (string, error) {
	var sb strings.Builder
	for {
		piece, err := b.pr.next()
		if err != nil {
			return "", b.fail(err)
		}
		sb.Write(piece)
		lit, ok := literalAt(piece)
		if !ok {
			resp := sb.String()
			if strings.HasPrefix(resp, "* BYE") {
				b.broken = true
			}
			return resp, nil
		}
		if lit.size > maxBackendLine {
			return "", b.fail(fmt.Errorf("literal of %d bytes in a response", lit.size))
		}
		sb.WriteString("\r\n")
		if _, err := io.CopyN(&sb, b.r, lit.size); err != nil {
			return "", b.fail(err)
		}
	}
}

// logout ends the connection politely, without waiting long.
func (b *backend) logout() {
	if !b.broken {
		// Worth a second at most, whatever the backend timeout.
		b.timeout = time.Second
		b.takeWriter()
		b.w.WriteString("Q01 LOGOUT\r\n")
		_ = b.w.Flush()
	}
	b.conn.Close()
}

// alive reports whether a cached connection still looks usable, without a
// round trip: a connection the backend closed reads EOF at once, and
// anything the backend sent unasked (a BYE before closing) means it is
// going away too.
func (b *backend) alive() bool {
	if b.broken || (b.r != nil && b.r.Buffered() > 0) || !peekIdle(b.conn) {
		b.broken = true
		return false
	}
	return true
}
