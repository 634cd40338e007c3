package testserve

import (
	"bufio"
	"net"
	"testing"
)

// TestServe: each connection gets the handler, and the end of the test
// waits for handlers that end when their peer hangs up.
func TestServe(t *testing.T) {
	ended := make(chan struct{}, 2)
	t.Run("inner", func(t *testing.T) {
		ln := Serve(t, "127.0.0.1:0", func(c net.Conn) {
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Write([]byte(line))
			ended <- struct{}{}
		})
		for range 2 {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte("ping\n"))
			if got, _ := bufio.NewReader(c).ReadString('\n'); got != "ping\n" {
				t.Errorf("echo: %q", got)
			}
			c.Close()
		}
	})
	if len(ended) != 2 {
		t.Errorf("%d handlers ended by the end of the test", len(ended))
	}
}
