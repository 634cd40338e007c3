package benchutil

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rookery/rookery/internal/cyrustest"
)

// Start is how a side-by-side bench tool begins: it exits with status 2
// and a clear message when real Cyrus cannot be run here, and returns a
// context cancelled on SIGINT or SIGTERM. The signals stay caught after
// the first, so a second Ctrl-C cannot kill the process before the tool
// has stopped Cyrus and removed its files.
func Start(tool string) (context.Context, context.CancelFunc) {
	if err := cyrustest.Available(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: needs root and real Cyrus 3.6 (sudo internal/cyrustest/install-cyrus.sh): %v\n", tool, err)
		os.Exit(2)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "%s: %v: stopping and cleaning up\n", tool, s)
		cancel()
	}()
	return ctx, cancel
}
