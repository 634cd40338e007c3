package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
)

// errReplied: the handler has written its own tagged reply.
var errReplied = errors.New("imap: reply written")

// cmdStartTLS: RFC 3501 6.2.1. The tagged OK goes out in the clear, then
// the handshake; the client must ask for the capabilities again, which
// now lack STARTTLS and LOGINDISABLED.
func cmdStartTLS(sess *session, tag string, _ bool) (string, error) {
	if err := sess.r.end(); err != nil {
		return "", err
	}
	switch {
	case sess.srv.cfg.TLS == nil:
		return "", bad("STARTTLS not available")
	case sess.tls:
		return "", bad("Already under TLS")
	case sess.authed:
		return "", bad("Already authenticated")
	case sess.r.br.Buffered() > 0:
		// Bytes sent after STARTTLS in the clear would otherwise be taken
		// as commands of the TLS session (CVE-2011-0411).
		sess.log.Warn("imap: data pipelined after STARTTLS; closing")
		sess.w.raw("* BYE Data pipelined after STARTTLS\r\n")
		sess.closing = true
		return "", bad("Commands after STARTTLS must wait for its reply")
	}
	sess.w.status(tag, "OK", "", "Begin TLS negotiation now")
	if err := sess.w.flush(); err != nil {
		return "", err
	}
	tc := tls.Server(sess.timed, sess.srv.cfg.TLS)
	if err := sess.handshake(tc); err != nil {
		return "", errors.Join(err, net.ErrClosed)
	}
	// Whatever the buffers held belongs to the plaintext session.
	sess.r.br.Reset(tc)
	sess.w.bw.Reset(tc)
	sess.tls, sess.plainOK = true, true
	return "", errReplied
}

// handshake runs a TLS handshake within the handshake timeout.
func (sess *session) handshake(tc *tls.Conn) error {
	ctx, cancel := context.WithTimeout(sess.srv.ctx, sess.srv.cfg.HandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		sess.log.Debug("imap: TLS handshake failed", "err", err)
		return fmt.Errorf("imap: tls handshake: %w", err)
	}
	return nil
}
