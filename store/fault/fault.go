// Package fault keeps a Pebble store's writes safe from its disk: it
// checks before each write that the store's folder is still the one opened
// and that the disk has room, classifies every write and background error,
// and remembers the first fatal one. Pebble cannot go on after a failed WAL
// write or a folder removed under it (it panics, or retries a failing
// flush in a tight loop), so a fault is caught here before Pebble sees it
// whenever it can be.
//
// A fatal fault (the folder removed or replaced, an I/O error, corruption)
// is logged once with its cause; from then on every write is refused with
// an error wrapping ErrFailed, without touching Pebble, until a restart. A
// full disk is not fatal: writes are refused with ErrNoSpace while free
// space is under the reserve, and work again once it is back.
package fault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Errors of a guarded store; test with errors.Is.
var (
	// ErrFailed: the store had a fatal fault and takes no more writes.
	ErrFailed = errors.New("store: failed")
	// ErrNoSpace: the disk is (nearly) full; retry once space is freed.
	ErrNoSpace = errors.New("store: not enough free disk space")
)

// State is a guarded store's health.
type State int

// States, from best to worst.
const (
	OK     State = iota
	Full         // writes refused until space returns
	Failed       // writes refused until a restart
)

// String names the state for logs, /status and gossip.
func (s State) String() string {
	switch s {
	case OK:
		return "ok"
	case Full:
		return "full"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Config configures a Guard.
type Config struct {
	// Name is the store's name in logs ("store", "mailstore").
	Name string
	// Dir is the store's folder; it must exist.
	Dir    string
	Logger *slog.Logger // nil discards
	// Reserve is the free space, in bytes, under which writes are
	// refused: room for Pebble's own flushes and WAL rotation, which
	// cannot fail without breaking the store.
	Reserve uint64
	// Interval is how often the folder and free space are checked while
	// no writes come (so an idle node still notices); 0 means 2 s.
	Interval time.Duration
	// SlowFatal is how long a disk operation may hang before the store is
	// failed (a stalled disk); 0 means 60 s.
	SlowFatal time.Duration
	// OnChange is called, from any goroutine, after the state changes; it
	// must not block.
	OnChange func(State, error)
}

// Guard watches one store. Its methods are safe for concurrent use.
type Guard struct {
	cfg   Config
	log   *slog.Logger
	ident fileID

	mu     sync.Mutex // serialises state changes and their reports
	state  atomic.Int32
	failed atomic.Pointer[error]

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

type fileID struct{ dev, ino uint64 }

// stRDOnly is statfs's ST_RDONLY flag.
const stRDOnly = 1

// minInodes is the free inodes under which writes are refused.
const minInodes = 64

// New makes a guard for the folder cfg.Dir, as it is now, and starts
// watching it; Close stops that.
func New(cfg Config) (*Guard, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.SlowFatal <= 0 {
		cfg.SlowFatal = time.Minute
	}
	id, err := identify(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Name, err)
	}
	g := &Guard{cfg: cfg, log: cfg.Logger, ident: id, stop: make(chan struct{}), done: make(chan struct{})}
	go g.watch()
	return g, nil
}

func identify(dir string) (fileID, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return fileID{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, nil
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino}, nil
}

// Close stops the periodic checks.
func (g *Guard) Close() {
	g.stopOnce.Do(func() { close(g.stop) })
	<-g.done
}

// Stopping is closed once Close has been called: whatever waits on the
// disk for the store can give up then.
func (g *Guard) Stopping() <-chan struct{} { return g.stop }

func (g *Guard) watch() {
	defer close(g.done)
	t := time.NewTicker(g.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
			_ = g.Writable()
		}
	}
}

// State is the store's health now.
func (g *Guard) State() State { return State(g.state.Load()) }

// Err is the fatal fault (wrapping ErrFailed), or nil.
func (g *Guard) Err() error {
	if p := g.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Writable says whether a write may go to Pebble now: nil, or an error
// wrapping ErrFailed or ErrNoSpace. It costs two system calls.
func (g *Guard) Writable() error {
	if err := g.Err(); err != nil {
		return err
	}
	if err := g.checkFolder(); err != nil {
		return err
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(g.cfg.Dir, &fs); err != nil {
		return g.Fail(fmt.Errorf("%s: free space of %s: %w", g.cfg.Name, g.cfg.Dir, err))
	}
	// A file system the kernel turned read-only after I/O errors
	// (errors=remount-ro) is a failed disk, caught before Pebble's WAL
	// write fails and takes the store down in a panic.
	if fs.Flags&stRDOnly != 0 {
		return g.Fail(fmt.Errorf("%s: %s is on a read-only file system", g.cfg.Name, g.cfg.Dir))
	}
	free := fs.Bavail * uint64(fs.Bsize)
	if free < g.cfg.Reserve {
		return g.full(fmt.Errorf("%w: %d bytes free in %s, %d needed", ErrNoSpace, free, g.cfg.Dir, g.cfg.Reserve))
	}
	// Out of inodes is ENOSPC too; a flush and a WAL rotation need a few.
	if fs.Files > 0 && fs.Ffree < minInodes {
		return g.full(fmt.Errorf("%w: %d inodes free in %s", ErrNoSpace, fs.Ffree, g.cfg.Dir))
	}
	g.recovered()
	return nil
}

// checkFolder fails the store when its folder is gone or another one took
// its name: Pebble's open files then live on unlinked, so a write would
// seem to succeed and be lost.
func (g *Guard) checkFolder() error {
	id, err := identify(g.cfg.Dir)
	if err != nil {
		return g.Fail(fmt.Errorf("%s: data folder: %w", g.cfg.Name, err))
	}
	if id != g.ident {
		return g.Fail(fmt.Errorf("%s: data folder %s was replaced under the running store", g.cfg.Name, g.cfg.Dir))
	}
	return nil
}

// Done classifies a write's outcome: nil once the folder is checked
// again (a write is not durable in a folder removed meanwhile), else an
// error wrapping ErrNoSpace or ErrFailed. Call it after the write's sync.
func (g *Guard) Done(err error) error {
	if err == nil {
		if err := g.Err(); err != nil {
			return err
		}
		return g.checkFolder()
	}
	if errors.Is(err, ErrFailed) || errors.Is(err, ErrNoSpace) {
		return err
	}
	if failed := g.Err(); failed != nil {
		return failed
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return g.full(fmt.Errorf("%w: %w", ErrNoSpace, err))
	}
	return g.Fail(err)
}

// Fail makes the store failed with cause, logging it the first time, and
// returns the error every later write gets.
func (g *Guard) Fail(cause error) error {
	if err := g.Err(); err != nil {
		return err
	}
	g.mu.Lock()
	if err := g.Err(); err != nil {
		g.mu.Unlock()
		return err
	}
	err := fmt.Errorf("%w: %w", ErrFailed, cause)
	g.failed.Store(&err)
	g.state.Store(int32(Failed))
	g.log.Error(g.cfg.Name+": fatal storage fault: writes refused until a restart", "err", cause)
	g.mu.Unlock()
	if g.cfg.OnChange != nil {
		g.cfg.OnChange(Failed, err)
	}
	return err
}

func (g *Guard) full(err error) error {
	if g.State() != OK {
		return err
	}
	g.mu.Lock()
	changed := g.state.CompareAndSwap(int32(OK), int32(Full))
	if changed {
		g.log.Warn(g.cfg.Name+": disk full: writes refused until space is freed", "err", err)
	}
	g.mu.Unlock()
	if changed && g.cfg.OnChange != nil {
		g.cfg.OnChange(Full, err)
	}
	return err
}

func (g *Guard) recovered() {
	if g.State() != Full {
		return
	}
	g.mu.Lock()
	changed := g.state.CompareAndSwap(int32(Full), int32(OK))
	if changed {
		g.log.Info(g.cfg.Name + ": disk space is back: writes accepted again")
	}
	g.mu.Unlock()
	if changed && g.cfg.OnChange != nil {
		g.cfg.OnChange(OK, nil)
	}
}

// Listen sets l's handlers for Pebble's background errors, corruption and
// slow disk: a full disk under a flush is Full, any other background
// error or corruption fails the store, and so does a disk operation that
// hangs for SlowFatal. Slow ones are logged.
func (g *Guard) Listen(l *pebble.EventListener) {
	l.BackgroundError = func(err error) {
		// Work cut short by Close is no fault of the disk.
		if !errors.Is(err, pebble.ErrClosed) {
			_ = g.Done(err)
		}
	}
	l.DataCorruption = func(info pebble.DataCorruptionInfo) {
		_ = g.Fail(fmt.Errorf("%s: corruption in %s: %w", g.cfg.Name, info.Path, info.Details))
	}
	l.DiskSlow = func(info pebble.DiskSlowInfo) {
		if info.Duration >= g.cfg.SlowFatal {
			_ = g.Fail(fmt.Errorf("%s: disk stalled: %s", g.cfg.Name, info.String()))
			return
		}
		// One message for all, so the node's log limits their repeats.
		g.log.Warn(g.cfg.Name+": disk slow", "detail", info.String())
	}
}

// FS wraps fs so that a flush or compaction Pebble retries after a fault
// (it does so at once and forever) creates no file while the store is
// failed or full: each try waits a second first, and the store's Close
// ends the wait.
func (g *Guard) FS(fs vfs.FS) vfs.FS { return guardedFS{FS: fs, g: g} }

type guardedFS struct {
	vfs.FS
	g *Guard
}

func (f guardedFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	switch f.g.State() {
	case Failed:
		f.g.pause()
		return nil, f.g.Err()
	case Full:
		f.g.pause()
	}
	return f.FS.Create(name, category)
}

func (g *Guard) pause() {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-t.C:
	case <-g.stop:
	}
}

// Recover turns a panic in Pebble (its answer to a failed WAL write)
// into a failed store; use as defer g.Recover(&err).
func (g *Guard) Recover(err *error) {
	if v := recover(); v != nil {
		cause, ok := v.(error)
		if !ok {
			cause = fmt.Errorf("%v", v)
		}
		*err = g.Fail(fmt.Errorf("%s: pebble panicked: %w", g.cfg.Name, cause))
	}
}

// CloseWithin runs closeFn, Pebble's Close, but returns after d at the
// latest: Pebble's Close waits for a flush that a disk gone bad may never
// finish, and a node must still stop.
func CloseWithin(d time.Duration, closeFn func() error) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		var err error
		defer func() {
			if v := recover(); v != nil {
				err = fmt.Errorf("store: close panicked: %v", v)
			}
			done <- err
		}()
		err = closeFn()
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("store: close did not finish within %v; left behind", d)
	}
}
