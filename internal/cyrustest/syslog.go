package cyrustest

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

//go:embed shim/syslog.c
var shimSource []byte

// shimEnv names the log file for the shim in the Cyrus master's
// environment.
const shimEnv = "ROOKERY_CYRUS_SYSLOG"

var (
	shimOnce  sync.Once
	shimBuilt string // compiled shim in root's cache
	shimErr   error
)

// shimName is the compiled shim's file name, keyed by the source's hash so
// that a changed shim is never taken for an old build.
func shimName() string {
	sum := sha256.Sum256(shimSource)
	return "syslog-" + hex.EncodeToString(sum[:8]) + ".so"
}

// compileShim compiles the shim into dir unless it is there already. The
// build goes to a temporary name first: rename is atomic, so a parallel
// test binary sees the whole file or none.
func compileShim(dir string) (string, error) {
	out := filepath.Join(dir, shimName())
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	cc, err := exec.LookPath("cc")
	if err != nil {
		return "", fmt.Errorf("cyrustest: no C compiler for the syslog shim: %w", err)
	}
	src, err := os.CreateTemp(dir, "shim-*.c")
	if err != nil {
		return "", fmt.Errorf("cyrustest: syslog shim: %w", err)
	}
	defer os.Remove(src.Name())
	_, err = src.Write(shimSource)
	if err = errors.Join(err, src.Close()); err != nil {
		return "", fmt.Errorf("cyrustest: syslog shim: %w", err)
	}
	tmp := src.Name() + ".so"
	defer os.Remove(tmp)
	if b, err := exec.Command(cc, "-shared", "-fPIC", "-O2", "-o", tmp, src.Name()).CombinedOutput(); err != nil {
		return "", fmt.Errorf("cyrustest: compiling the syslog shim: %w\n%s", err, b)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", fmt.Errorf("cyrustest: syslog shim: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", fmt.Errorf("cyrustest: syslog shim: %w", err)
	}
	return out, nil
}

// cachedShim compiles the shim once per process into root's cache, which
// parallel test binaries share.
func cachedShim() (string, error) {
	shimOnce.Do(func() {
		cache, err := os.UserCacheDir()
		if err != nil {
			shimErr = fmt.Errorf("cyrustest: %w", err)
			return
		}
		dir := filepath.Join(cache, "rookery-cyrustest")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			shimErr = fmt.Errorf("cyrustest: %w", err)
			return
		}
		shimBuilt, shimErr = compileShim(dir)
	})
	return shimBuilt, shimErr
}

// installShim puts the shim into DIR/lib, where user cyrus can load it
// (root's cache is closed to it), copied from the cache or, without one,
// compiled there. DIR/lib stays root's: the master loads the shim as root,
// so user cyrus must not be able to replace it.
func (i *Instance) installShim() (string, error) {
	lib := filepath.Join(i.Dir, "lib")
	built, err := cachedShim()
	if err != nil {
		return compileShim(lib)
	}
	dst := filepath.Join(lib, filepath.Base(built))
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	in, err := os.Open(built)
	if err != nil {
		return "", fmt.Errorf("cyrustest: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return "", fmt.Errorf("cyrustest: %w", err)
	}
	_, err = io.Copy(out, in)
	if err = errors.Join(err, out.Close()); err != nil {
		return "", fmt.Errorf("cyrustest: %w", err)
	}
	return dst, nil
}
