package pop3

import (
	"context"
	"crypto/tls"
	"fmt"
)

// startTLS is STLS (RFC 2595 4); it reports whether the session ends.
// After it the client must ask CAPA again: STLS is gone and USER and
// SASL PLAIN are offered.
func (ss *serverSession) startTLS(args []string) bool {
	switch {
	case len(args) > 0:
		ss.w.Err("Syntax: STLS")
		return false
	case ss.srv.cfg.TLS == nil, ss.tls:
		ss.w.Err("STLS not available")
		return false
	case ss.user != "":
		ss.w.Err("STLS not allowed after USER")
		return false
	case ss.r.Buffered() > 0:
		// Bytes sent after STLS in the clear would otherwise be taken as
		// commands of the TLS session (CVE-2011-0411).
		ss.log.Warn("pop3: data pipelined after STLS; closing")
		ss.w.Err("Commands after STLS must wait for its reply")
		return true
	}
	ss.w.OK("Begin TLS negotiation")
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
	return false
}

// handshake runs a TLS handshake within the handshake timeout.
func (ss *serverSession) handshake(tc *tls.Conn) error {
	ctx, cancel := context.WithTimeout(ss.srv.acc.Context(), ss.srv.cfg.HandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		ss.log.Debug("pop3: TLS handshake failed", "err", err)
		return fmt.Errorf("pop3: tls handshake: %w", err)
	}
	return nil
}
