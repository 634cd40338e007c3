package accept

import (
	"context"
	"net"
	"time"
)

// Timeouts wraps c so that every read gets the idle timeout (cut short
// by p's login deadline while the connection has not authenticated) and
// every write the write timeout (a silent or stuck peer is cut off
// without a timer per command), and both fail once ctx ends, so a server
// that is closing is not held up by a session in the middle of a read.
func Timeouts(ctx context.Context, c net.Conn, p *Preauth, read, write time.Duration) net.Conn {
	return &timeoutConn{Conn: c, ctx: ctx, p: p, read: read, write: write}
}

type timeoutConn struct {
	net.Conn
	ctx         context.Context
	p           *Preauth
	read, write time.Duration
}

func (c *timeoutConn) Read(p []byte) (int, error) {
	_ = c.Conn.SetReadDeadline(c.p.Deadline(c.read))
	// Checked after setting the deadline: Close's own deadline, set
	// after the cancel, then wins whichever runs first.
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *timeoutConn) Write(p []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.write))
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}
