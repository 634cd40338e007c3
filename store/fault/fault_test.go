package fault

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

type changes struct {
	mu  sync.Mutex
	got []State
}

func (c *changes) record(st State, _ error) {
	c.mu.Lock()
	c.got = append(c.got, st)
	c.mu.Unlock()
}

func (c *changes) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprint(c.got)
}

// syncBuf is a log buffer the guard's watcher may write to meanwhile.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newGuard(t *testing.T, dir string, log *syncBuf, ch *changes) *Guard {
	t.Helper()
	g, err := New(Config{Name: "test", Dir: dir, Logger: slog.New(slog.NewTextHandler(log, nil)), OnChange: ch.record})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

func TestFolderRemovedFailsOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	os.Mkdir(dir, 0o700)
	var log syncBuf
	var ch changes
	g := newGuard(t, dir, &log, &ch)
	if err := g.Writable(); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(dir)
	for range 3 {
		if err := g.Writable(); !errors.Is(err, ErrFailed) || !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Writable with the folder gone: %v", err)
		}
	}
	// The same name made again is not the store's folder.
	os.Mkdir(dir, 0o700)
	if err := g.Done(nil); !errors.Is(err, ErrFailed) {
		t.Fatalf("Done after the folder came back empty: %v", err)
	}
	if n := strings.Count(log.String(), "fatal storage fault"); n != 1 {
		t.Errorf("%d fault lines:\n%s", n, log.String())
	}
	if g.State() != Failed || ch.String() != "[failed]" {
		t.Errorf("state %v, changes %v", g.State(), ch.String())
	}
}

func TestFolderReplacedFails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	os.Mkdir(dir, 0o700)
	var log syncBuf
	g := newGuard(t, dir, &log, &changes{})
	os.Rename(dir, dir+".old")
	os.Mkdir(dir, 0o700)
	if err := g.Writable(); !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "replaced") {
		t.Fatalf("Writable with another folder in place: %v", err)
	}
}

func TestNoSpaceIsNotFatal(t *testing.T) {
	var log syncBuf
	var ch changes
	g := newGuard(t, t.TempDir(), &log, &ch)
	enospc := &os.PathError{Op: "write", Path: "000005.log", Err: syscall.ENOSPC}
	for range 3 {
		if err := g.Done(enospc); !errors.Is(err, ErrNoSpace) || errors.Is(err, ErrFailed) {
			t.Fatalf("Done(ENOSPC): %v", err)
		}
	}
	if g.State() != Full {
		t.Fatalf("state %v, want full", g.State())
	}
	// Space is back (the reserve is 0 here): writes are taken again.
	if err := g.Writable(); err != nil {
		t.Fatal(err)
	}
	if g.State() != OK || ch.String() != "[full ok]" {
		t.Errorf("state %v, changes %v", g.State(), ch.String())
	}
	if n := strings.Count(log.String(), "disk full"); n != 1 {
		t.Errorf("%d disk full lines:\n%s", n, log.String())
	}
}

func TestReserveRefusesWrites(t *testing.T) {
	g, err := New(Config{Name: "test", Dir: t.TempDir(), Reserve: 1 << 62})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Writable(); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Writable under the reserve: %v", err)
	}
}

func TestPanicsAndOtherErrorsFail(t *testing.T) {
	var log syncBuf
	g := newGuard(t, t.TempDir(), &log, &changes{})
	func() {
		var err error
		defer func() {
			if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "fatal commit error") {
				t.Errorf("recovered panic gave %v", err)
			}
		}()
		defer g.Recover(&err)
		panic(errors.New("pebble: fatal commit error: input/output error"))
	}()
	if err := g.Done(syscall.EIO); !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "fatal commit error") {
		t.Errorf("Done after the failure: %v, want the first cause", err)
	}
}

// TestFailedStoreSlowsPebbleRetries: Pebble retries a failed flush at
// once and for ever; on a failed store each try waits, creates nothing,
// and Close ends the wait.
func TestFailedStoreSlowsPebbleRetries(t *testing.T) {
	var log syncBuf
	g, err := New(Config{Name: "test", Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	mem := vfs.NewMem()
	fs := g.FS(mem)
	if f, err := fs.Create("000001.sst", vfs.WriteCategoryUnspecified); err != nil {
		t.Fatal(err)
	} else {
		f.Close()
	}
	_ = g.Fail(errors.New("creating object 2: no such file or directory"))
	start := time.Now()
	if _, err := fs.Create("000002.sst", vfs.WriteCategoryUnspecified); !errors.Is(err, ErrFailed) {
		t.Fatalf("Create on a failed store: %v", err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("a retry came back after %v, want about a second", d)
	}
	if _, err := mem.Stat("000002.sst"); err == nil {
		t.Error("a file was created on a failed store")
	}
	g.Close()
	start = time.Now()
	_, _ = fs.Create("000003.sst", vfs.WriteCategoryUnspecified)
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Create after Close waited %v", d)
	}
}
