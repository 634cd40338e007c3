package mupdate

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"
)

// defaultClientTimeout is Cyrus's client_timeout (section 1.7).
const defaultClientTimeout = 10 * time.Second

// ClientConfig says how a Client connects and authenticates.
type ClientConfig struct {
	Username, Password string        // SASL PLAIN authcid / password; an empty Username skips authentication
	Authzid            string        // optional SASL authorisation id
	Timeout            time.Duration // connect + greeting + auth timeout (Cyrus client_timeout), default 10s
	// TLS, if set, is used for STARTTLS whenever the server offers it
	// (section 3.13); the greeting is then read again over TLS.
	TLS    *tls.Config
	Logger *slog.Logger // nil discards
}

// Greeting is what the server announced on connect (section 2.1).
type Greeting struct {
	Mechanisms    []string // from "* AUTH", quotes removed
	StartTLS      bool
	PartialUpdate bool
	// From `* OK MUPDATE "<Server>" "<Software>" "<Version>" "<Mode>"`;
	// Mode is "(master)" or "mupdate://<master>" on a replica.
	Server, Software, Version, Mode string
	Capabilities                    map[string][]string // every line before the OK, by name
}

// Record is one mailbox line from FIND, LIST or an UPDATE dump or stream, or
// (from Next only) the OK of a NOOP sent with SendNoop.
type Record struct {
	Tag  string
	Kind string // MAILBOX, RESERVE, DELETE, or OK
	Name string
	// Location is "server!partition"; ACL is set for MAILBOX only.
	Location, ACL string
}

// ServerError is a NO, BAD or BYE reply.
type ServerError struct {
	Status, Text string
}

func (e *ServerError) Error() string {
	return "mupdate: server replied " + e.Status + " " + strconv.Quote(e.Text)
}

// errStreaming is returned for commands that cannot be sent on a
// connection that has started an UPDATE stream.
var errStreaming = errors.New("mupdate: connection is streaming updates")

// Client is one MUPDATE connection. It is not safe for concurrent use,
// except Close, which may be called at any time to abort a blocked call.
type Client struct {
	conn      net.Conn
	r         *Reader
	w         *Writer
	log       *slog.Logger
	timeout   time.Duration
	greeting  Greeting
	seq       int    // counter of X<n> and N<n> tags, like Cyrus's
	streamTag string // set once UPDATE has started streaming
	tls       bool
	closeOnce sync.Once
	closeErr  error
}

// Dial connects to addr, reads the greeting and authenticates with SASL
// PLAIN (section 3.3), all within cfg.Timeout and ctx.
func Dial(ctx context.Context, addr string, cfg ClientConfig) (*Client, error) {
	d := net.Dialer{Timeout: cfg.timeout()}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mupdate: %w", err)
	}
	c, err := newClient(ctx, conn, cfg)
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("mupdate: connect to %s: %w", addr, ctx.Err())
	}
	return c, err
}

func (cfg ClientConfig) timeout() time.Duration {
	if cfg.Timeout > 0 {
		return cfg.Timeout
	}
	return defaultClientTimeout
}

// NewClient does what Dial does on an existing connection, which it closes
// if the greeting or the authentication fails.
func NewClient(conn net.Conn, cfg ClientConfig) (*Client, error) {
	return newClient(context.Background(), conn, cfg)
}

func newClient(ctx context.Context, conn net.Conn, cfg ClientConfig) (*Client, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		conn:    conn,
		r:       NewReader(conn, Limits{}),
		w:       NewWriter(conn),
		log:     log.With("remote", conn.RemoteAddr().String()),
		timeout: cfg.timeout(),
	}
	conn.SetDeadline(time.Now().Add(c.timeout))
	// Cancelling ctx during the handshake unblocks it; registered after the
	// deadline above, so that deadline cannot undo a cancellation.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	err := c.readGreeting()
	if err == nil && cfg.TLS != nil && c.greeting.StartTLS {
		err = c.startTLS(cfg.TLS)
	}
	if err == nil && cfg.Username != "" {
		err = c.authenticate(cfg)
	}
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err == nil {
		// Like Cyrus, wait for replies for ever once connected (section 1.7).
		err = conn.SetDeadline(time.Time{})
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	c.log.Debug("mupdate connected", "server", c.greeting.Server, "mode", c.greeting.Mode)
	return c, nil
}

// readGreeting reads capability lines up to the "* OK" that ends the
// greeting (section 2.2).
func (c *Client) readGreeting() error {
	g := Greeting{Capabilities: map[string][]string{}}
	for {
		resp, err := c.r.ReadResponse()
		if err != nil {
			return fmt.Errorf("mupdate: read greeting: %w", err)
		}
		if resp.Tag != "*" {
			return fmt.Errorf("mupdate: tagged line %q in greeting: %w", resp.Tag+" "+resp.Kind, errMalformed)
		}
		switch resp.Kind {
		case kindOK:
			if len(resp.Args) == 5 && resp.Args[0] == "MUPDATE" {
				g.Server, g.Software, g.Version, g.Mode = resp.Args[1], resp.Args[2], resp.Args[3], resp.Args[4]
			}
			c.greeting = g
			return nil
		case kindBYE, kindNO, kindBAD:
			return &ServerError{Status: resp.Kind, Text: resp.Text}
		case "AUTH":
			g.Mechanisms = resp.Args
		case "STARTTLS":
			g.StartTLS = true
		case "PARTIAL-UPDATE":
			g.PartialUpdate = true
		}
		g.Capabilities[resp.Kind] = resp.Args
	}
}

// startTLS upgrades the connection (Cyrus's client sends S01 and only
// checks for OK) and reads the greeting the server sends again.
func (c *Client) startTLS(conf *tls.Config) error {
	c.w.Command("S01", cmdStartTLS)
	if err := c.Flush(); err != nil {
		return err
	}
	resp, err := c.r.ReadResponse()
	if err != nil {
		return fmt.Errorf("mupdate: read reply to STARTTLS: %w", err)
	}
	if resp.Kind != kindOK {
		return &ServerError{Status: resp.Kind, Text: resp.Text}
	}
	if conf.ServerName == "" && !conf.InsecureSkipVerify {
		// A verifying config needs a name to check; masters are found
		// by address, so the certificate must name the address dialled.
		conf = conf.Clone()
		conf.ServerName, _, _ = net.SplitHostPort(c.conn.RemoteAddr().String())
	}
	tc := tls.Client(c.conn, conf)
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("mupdate: tls: %w", err)
	}
	c.conn, c.tls = tc, true
	c.r = NewReader(tc, Limits{})
	c.w = NewWriter(tc)
	return c.readGreeting()
}

// TLS reports whether the connection runs over TLS.
func (c *Client) TLS() bool { return c.tls }

// authTag is Cyrus's fixed AUTHENTICATE tag (section 6.1).
const authTag = "A01"

// authenticate runs SASL PLAIN with the initial response sent as a {n+}
// literal, like Cyrus's client (section 3.3).
func (c *Client) authenticate(cfg ClientConfig) error {
	if !slices.Contains(c.greeting.Mechanisms, "PLAIN") {
		return fmt.Errorf("mupdate: server does not offer SASL PLAIN (offers %q)", c.greeting.Mechanisms)
	}
	ir := base64.StdEncoding.EncodeToString([]byte(cfg.Authzid + "\x00" + cfg.Username + "\x00" + cfg.Password))
	w := c.w
	w.bw.WriteString(authTag + " AUTHENTICATE ")
	w.quoted("PLAIN")
	w.bw.WriteByte(' ')
	w.literal(ir)
	w.bw.WriteString("\r\n")
	if err := w.Flush(); err != nil {
		return fmt.Errorf("mupdate: authenticate: %w", err)
	}
	for {
		// Anything but a reply line is a challenge, and PLAIN has no answer
		// to one: cancel, and the server replies NO.
		reply, err := c.r.hasPrefix(authTag+" ", "* ")
		if err != nil {
			return fmt.Errorf("mupdate: authenticate: %w", err)
		}
		if !reply {
			if _, err := c.r.ReadLine(); err != nil {
				return fmt.Errorf("mupdate: authenticate: %w", err)
			}
			w.Line("*")
			if err := w.Flush(); err != nil {
				return fmt.Errorf("mupdate: authenticate: %w", err)
			}
			continue
		}
		resp, err := c.r.ReadResponse()
		if err != nil {
			return fmt.Errorf("mupdate: authenticate: %w", err)
		}
		switch {
		case resp.Kind == kindOK && resp.Tag == authTag:
			c.log.Debug("mupdate authenticated", "user", cfg.Username)
			return nil
		case resp.Kind == kindOK:
			continue
		case isStatus(resp.Kind):
			return fmt.Errorf("mupdate: authenticate as %q: %w", cfg.Username, &ServerError{Status: resp.Kind, Text: resp.Text})
		}
		return fmt.Errorf("mupdate: authenticate: unexpected %s line: %w", resp.Kind, errMalformed)
	}
}

func isStatus(kind string) bool {
	return kind == kindOK || kind == kindNO || kind == kindBAD || kind == kindBYE
}

// Greeting returns what the server announced on connect.
func (c *Client) Greeting() Greeting { return c.greeting }

func (c *Client) nextTag(prefix string) string {
	tag := prefix + strconv.Itoa(c.seq)
	c.seq++
	return tag
}

// Send writes a command with the next X<n> tag into the buffer without
// waiting for its reply; Flush sends it and Await reads the reply. Many
// commands may be in flight; the server answers them in order.
func (c *Client) Send(name string, args ...string) (tag string, err error) {
	if c.streamTag != "" {
		return "", errStreaming
	}
	tag = c.nextTag("X")
	c.w.Command(tag, name, args...)
	return tag, nil
}

// Flush sends the commands written by Send.
func (c *Client) Flush() error {
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("mupdate: send: %w", err)
	}
	return nil
}

// Await reads replies until the status line for tag and returns it; data
// lines before it are dropped. A NO, BAD or BYE status is returned together
// with a *ServerError. Awaiting tags out of order is an error.
func (c *Client) Await(tag string) (*Response, error) {
	return c.await(tag, nil)
}

// await reads replies until the status for tag, handing tag's data lines to
// fn. If fn fails, the remaining lines are still read, so that the
// connection stays in step, and fn's error is returned.
func (c *Client) await(tag string, fn func(*Response) error) (*Response, error) {
	var fnErr error
	for {
		resp, err := c.r.ReadResponse()
		if err != nil {
			return nil, fmt.Errorf("mupdate: read reply to %s: %w", tag, err)
		}
		switch {
		case resp.Kind == kindMailbox || resp.Kind == kindReserve || resp.Kind == kindDelete:
			if resp.Tag == tag && fn != nil && fnErr == nil {
				fnErr = fn(resp)
			}
			continue
		case !isStatus(resp.Kind):
			return nil, fmt.Errorf("mupdate: unexpected %s line in reply to %s: %w", resp.Kind, tag, errMalformed)
		case resp.Tag == "*" && resp.Kind == kindOK:
			continue
		case resp.Tag != tag && resp.Tag != "*":
			return nil, fmt.Errorf("mupdate: reply for %s while awaiting %s: %w", resp.Tag, tag, errMalformed)
		case resp.Kind != kindOK:
			return resp, &ServerError{Status: resp.Kind, Text: resp.Text}
		}
		return resp, fnErr
	}
}

// do sends one command and waits for its status.
func (c *Client) do(fn func(*Response) error, name string, args ...string) error {
	tag, err := c.Send(name, args...)
	if err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return err
	}
	_, err = c.await(tag, fn)
	return err
}

// Activate registers name as an active mailbox at location ("server!partition")
// with the given ACL (section 3.4).
func (c *Client) Activate(name, location, acl string) error {
	return c.do(nil, cmdActivate, name, location, acl)
}

// Reserve reserves name for location (section 3.5); a *ServerError NO
// means another location holds it.
func (c *Client) Reserve(name, location string) error {
	return c.do(nil, cmdReserve, name, location)
}

// Deactivate turns the active entry name into a reservation at location
// (section 3.6). A Cyrus master crashes on a name it does not hold as
// active, so check with Find first when in doubt.
func (c *Client) Deactivate(name, location string) error {
	return c.do(nil, cmdDeactivate, name, location)
}

// Delete removes name (section 3.7). A Cyrus master crashes on an unknown
// name, so check with Find first when in doubt.
func (c *Client) Delete(name string) error {
	return c.do(nil, cmdDelete, name)
}

// Find looks name up (section 3.8); it returns nil, nil if the server does
// not know it.
func (c *Client) Find(name string) (*Record, error) {
	var found *Record
	err := c.do(func(resp *Response) error {
		if found == nil && resp.Kind != kindDelete {
			rec := toRecord(resp)
			found = &rec
		}
		return nil
	}, cmdFind, name)
	if err != nil {
		return nil, err
	}
	return found, nil
}

// List calls fn for every entry whose location starts with prefix, or for
// every entry if prefix is "" (section 3.9). If fn fails, the rest of the
// list is read and dropped, and fn's error is returned.
func (c *Client) List(prefix string, fn func(Record) error) error {
	var args []string
	if prefix != "" {
		args = []string{prefix}
	}
	return c.do(func(resp *Response) error { return fn(toRecord(resp)) }, cmdList, args...)
}

// Noop sends NOOP and waits for its OK. On a streaming connection use
// SendNoop.
func (c *Client) Noop() error {
	return c.do(nil, cmdNoop)
}

// updateTag is Cyrus's fixed UPDATE tag (section 5.1).
const updateTag = "U01"

// Update sends UPDATE with the given PARTIAL-UPDATE hosts (none: every
// entry), calls fn for every record of the initial dump and returns once the
// server says "streaming starts" (section 3.10). From then on the caller
// reads the stream with Next. A NO or BAD reply is an error, never an empty
// dump. If fn fails the dump is still read to its end, the connection
// streams, and fn's error is returned.
func (c *Client) Update(hosts []string, fn func(Record) error) error {
	if c.streamTag != "" {
		return errStreaming
	}
	c.w.Command(updateTag, cmdUpdate, hosts...)
	if err := c.Flush(); err != nil {
		return err
	}
	resp, err := c.await(updateTag, func(resp *Response) error { return fn(toRecord(resp)) })
	if resp != nil && resp.Kind == kindOK {
		c.streamTag = updateTag
	}
	return err
}

// Next returns the next record of the UPDATE stream, blocking until one
// arrives. The OK of a NOOP sent with SendNoop comes back as a Record with
// Kind "OK" and the NOOP's tag; a NO, BAD or BYE as a *ServerError.
func (c *Client) Next() (Record, error) {
	if c.streamTag == "" {
		return Record{}, errors.New("mupdate: Next without a started UPDATE")
	}
	resp, err := c.r.ReadResponse()
	if err != nil {
		return Record{}, fmt.Errorf("mupdate: read update stream: %w", err)
	}
	switch resp.Kind {
	case kindMailbox, kindReserve, kindDelete:
		return toRecord(resp), nil
	case kindOK:
		return Record{Tag: resp.Tag, Kind: kindOK}, nil
	case KindSeq:
		if len(resp.Args) != 1 {
			return Record{}, fmt.Errorf("mupdate: XSEQ line without one seq: %w", errMalformed)
		}
		return Record{Tag: resp.Tag, Kind: KindSeq, Name: resp.Args[0]}, nil
	case kindNO, kindBAD, kindBYE:
		return Record{}, &ServerError{Status: resp.Kind, Text: resp.Text}
	}
	return Record{}, fmt.Errorf("mupdate: unexpected %s line in update stream: %w", resp.Kind, errMalformed)
}

// SendNoop writes a NOOP with the next N<n> tag on a streaming connection
// without waiting; the server first sends every pending change, then the
// OK, which Next returns (section 3.11, 5.4).
func (c *Client) SendNoop() (tag string, err error) {
	tag = c.nextTag("N")
	c.w.Command(tag, cmdNoop)
	return tag, c.Flush()
}

// logoutTag is Cyrus's fixed LOGOUT tag (section 6.1).
const logoutTag = "Q01"

// Logout sends LOGOUT, waits (at most the configured timeout) for its OK or
// for the server to close, and closes the connection.
func (c *Client) Logout() error {
	defer c.Close()
	c.w.Command(logoutTag, cmdLogout)
	if err := c.Flush(); err != nil {
		return err
	}
	c.conn.SetReadDeadline(time.Now().Add(c.timeout))
	for {
		resp, err := c.r.ReadResponse()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil
			}
			return fmt.Errorf("mupdate: logout: %w", err)
		}
		if resp.Tag == logoutTag && isStatus(resp.Kind) {
			if resp.Kind != kindOK {
				return &ServerError{Status: resp.Kind, Text: resp.Text}
			}
			return nil
		}
	}
}

// Close closes the connection; it may be called from any goroutine, and
// more than once.
func (c *Client) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.conn.Close() })
	return c.closeErr
}

// SetDeadline sets the read and write deadline of the connection.
func (c *Client) SetDeadline(t time.Time) error { return c.conn.SetDeadline(t) }

func toRecord(resp *Response) Record {
	rec := Record{Tag: resp.Tag, Kind: resp.Kind}
	switch len(resp.Args) {
	case 3:
		rec.ACL = resp.Args[2]
		fallthrough
	case 2:
		rec.Location = resp.Args[1]
		fallthrough
	case 1:
		rec.Name = resp.Args[0]
	}
	return rec
}
