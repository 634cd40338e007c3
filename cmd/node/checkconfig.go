package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/node"
)

// checkConfig is "node check-config FILE": the file read, applied over
// the defaults and validated as a start would, plus the users file it
// names. It lists every problem in the file's own key names and exits 0
// when a node would start with the file, 1 when it would not, 2 when the
// file cannot be read or the command is misused. Unknown keys are
// warnings, as at start.
func checkConfig(stdout, stderr io.Writer, args []string) int {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stderr, "usage: node check-config FILE")
		return 2
	}
	file := args[0]
	ld, err := loadConfig(file, nil)
	var problems []string
	var ce *node.ConfigError
	switch {
	case errors.As(err, &ce):
		problems = ce.Problems
	case err != nil:
		fmt.Fprintln(stderr, "node check-config:", err)
		return 2
	}
	for _, k := range ld.unknown {
		hint := ""
		if s := node.SuggestKey(k); s != "" {
			hint = fmt.Sprintf(" (did you mean %s?)", s)
		}
		fmt.Fprintf(stdout, "%s: warning: %s: not an option this node uses%s; ignored\n", file, k, hint)
	}
	problems = append(problems, checkUsers(ld.cfg)...)
	for _, p := range problems {
		fmt.Fprintf(stdout, "%s: %s\n", file, p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(stdout, "%s: %d problem(s); a node would not start with it\n", file, len(problems))
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok\n", file)
	return 0
}

// checkUsers loads the users file a node with cfg would load. DATA/users
// may not exist yet: the first start writes it.
func checkUsers(cfg node.Config) []string {
	path := cfg.UsersPath()
	if cfg.UsersFile == "" {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil
		}
	}
	_, err := auth.LoadUsers(path)
	var fe *auth.UsersFileError
	switch {
	case errors.As(err, &fe):
		return fe.Problems
	case err != nil:
		return []string{fmt.Sprintf("users: %v", err)}
	}
	return nil
}
