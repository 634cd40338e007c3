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
	shimBuilt string // compiled shim in the user's cache, "" if none
	shimErr   error
)

// buildShim compiles the syslog shim once per process, into a
// root-owned cache keyed by the source's hash, so that parallel test
// binaries share one build.
func buildShim() (string, error) {
	shimOnce.Do(func() {
		cc, err := exec.LookPath("cc")
		if err != nil {
			shimErr = fmt.Errorf("cyrustest: no C compiler for the syslog shim: %w", err)
			return
		}
		cache, err := os.UserCacheDir()
		if err != nil {
			shimErr = fmt.Errorf("cyrustest: syslog shim: %w", err)
			return
		}
		sum := sha256.Sum256(shimSource)
		dir := filepath.Join(cache, "rookery-cyrustest")
		out := filepath.Join(dir, "syslog-"+hex.EncodeToString(sum[:8])+".so")
		if _, err := os.Stat(out); err == nil {
			shimBuilt = out
			return
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			shimErr = fmt.Errorf("cyrustest: syslog shim: %w", err)
			return
		}
		src, err := os.CreateTemp(dir, "shim-*.c")
		if err != nil {
			shimErr = fmt.Errorf("cyrustest: syslog shim: %w", err)
			return
		}
		defer os.Remove(src.Name())
		_, err = src.Write(shimSource)
		if err = errors.Join(err, src.Close()); err != nil {
			shimErr = fmt.Errorf("cyrustest: syslog shim: %w", err)
			return
		}
		tmp := src.Name() + ".so"
		defer os.Remove(tmp)
		if b, err := exec.Command(cc, "-shared", "-fPIC", "-O2", "-o", tmp, src.Name()).CombinedOutput(); err != nil {
			shimErr = fmt.Errorf("cyrustest: compiling the syslog shim: %w\n%s", err, b)
			return
		}
		// rename is atomic: another process sees the whole file or none.
		if err := os.Rename(tmp, out); err != nil {
			shimErr = fmt.Errorf("cyrustest: syslog shim: %w", err)
			return
		}
		shimBuilt = out
	})
	return shimBuilt, shimErr
}

// installShim copies the shim into DIR/lib, where user cyrus can load it
// (the cache is root's). DIR/lib stays root's: the master loads the shim
// as root, so user cyrus must not be able to replace it.
func (i *Instance) installShim() (string, error) {
	built, err := buildShim()
	if err != nil {
		return "", err
	}
	dst := filepath.Join(i.Dir, "lib", filepath.Base(built))
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
