package lmtp

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
)

// startTLS is STARTTLS (RFC 3207); it reports whether the session ends.
// Everything learnt before it (LHLO, the transaction) is
// forgotten, as RFC 3207 4.2 asks: the client starts again with LHLO.
func (ss *serverSession) startTLS(arg string) bool {
	switch {
	case strings.TrimSpace(arg) != "":
		ss.w.Reply(501, "5.5.4 Syntax: STARTTLS")
		return false
	case ss.srv.cfg.TLS == nil, ss.tls:
		ss.w.Reply(502, "5.5.1 STARTTLS not available")
		return false
	case ss.authed:
		ss.w.Reply(503, "5.5.1 Already authenticated")
		return false
	case ss.r.Buffered() > 0:
		// Bytes sent after STARTTLS in the clear would otherwise be taken
		// as commands of the TLS session (CVE-2011-0411).
		ss.log.Warn("lmtp: data pipelined after STARTTLS; closing")
		ss.w.Reply(554, "5.5.1 Commands after STARTTLS must wait for its reply")
		return true
	}
	ss.w.Reply(220, "2.0.0 Ready to start TLS")
	if ss.w.Flush() != nil {
		return true
	}
	tc := tls.Server(ss.timed, ss.srv.cfg.TLS)
	if ss.handshake(tc) != nil {
		return true
	}
	// Whatever the buffers held belongs to the plaintext session.
	ss.r.r.Reset(tc)
	ss.w.w.Reset(tc)
	ss.tls, ss.plainOK = true, true
	ss.helo = ""
	ss.reset()
	return false
}

// handshake runs a TLS handshake within the handshake timeout.
func (ss *serverSession) handshake(tc *tls.Conn) error {
	ctx, cancel := context.WithTimeout(ss.srv.acc.Context(), ss.srv.cfg.HandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		ss.log.Debug("lmtp: TLS handshake failed", "err", err)
		return fmt.Errorf("lmtp: tls handshake: %w", err)
	}
	return nil
}
