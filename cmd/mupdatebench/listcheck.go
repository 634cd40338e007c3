package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// listed is one mailbox of a LIST or LSUB answer.
type listed struct {
	Name     string
	Noselect bool
}

// parseListing reads the LIST and LSUB lines of an answer; other
// untagged lines are skipped.
func parseListing(untagged []string) ([]listed, error) {
	var out []listed
	for _, l := range untagged {
		rest, ok := strings.CutPrefix(l, "* LIST (")
		if !ok {
			rest, ok = strings.CutPrefix(l, "* LSUB (")
		}
		if !ok {
			continue
		}
		attrs, rest, ok := strings.Cut(rest, ") ")
		if !ok {
			return nil, fmt.Errorf("no attributes in %q", l)
		}
		// The delimiter: a quoted character or NIL.
		switch {
		case strings.HasPrefix(rest, `"\\" `):
			rest = rest[5:]
		case strings.HasPrefix(rest, `"`) && len(rest) >= 4 && rest[2] == '"' && rest[3] == ' ':
			rest = rest[4:]
		case strings.HasPrefix(strings.ToUpper(rest), "NIL "):
			rest = rest[4:]
		default:
			return nil, fmt.Errorf("no delimiter in %q", l)
		}
		name, err := astring(rest)
		if err != nil {
			return nil, fmt.Errorf("%w in %q", err, l)
		}
		noselect := slices.ContainsFunc(strings.Fields(attrs), func(a string) bool { return strings.EqualFold(a, `\Noselect`) })
		out = append(out, listed{Name: name, Noselect: noselect})
	}
	return out, nil
}

// astring reads a whole mailbox name: quoted, a literal as
// cyrustest.IMAP keeps it ("{n}\r\n" and the bytes), or an atom.
func astring(s string) (string, error) {
	switch {
	case strings.HasPrefix(s, `"`):
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
				if i < len(s) {
					b.WriteByte(s[i])
				}
			case '"':
				if i != len(s)-1 {
					return "", errors.New("text after the mailbox name")
				}
				return b.String(), nil
			default:
				b.WriteByte(s[i])
			}
		}
		return "", errors.New("unterminated quoted mailbox name")
	case strings.HasPrefix(s, "{"):
		size, body, ok := strings.Cut(s, "\r\n")
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSuffix(size[1:], "}"), "+"))
		if !ok || err != nil || n != len(body) {
			return "", errors.New("bad literal mailbox name")
		}
		return body, nil
	case s == "" || strings.ContainsAny(s, " ()"):
		return "", errors.New("bad mailbox name")
	}
	return s, nil
}

// listedNames are the names of l, sorted.
func listedNames(l []listed) []string {
	out := make([]string, len(l))
	for i, x := range l {
		out[i] = x.Name
	}
	slices.Sort(out)
	return out
}

// noselectNames are the \Noselect names of l, sorted.
func noselectNames(l []listed) []string {
	var out []string
	for _, x := range l {
		if x.Noselect {
			out = append(out, x.Name)
		}
	}
	slices.Sort(out)
	return out
}

// checkListings compares the frontends' answers to cmd at size n: each
// must list the same names as the Rookery frontend, every name of want
// (selectable, for LIST), and nothing else but \Noselect names.
func checkListings(n int, cmd string, seen [nFrontends][]listed, want []string) []string {
	var problems []string
	bad := func(format string, a ...any) {
		problems = append(problems, fmt.Sprintf("[%d] %s: ", n, cmd)+fmt.Sprintf(format, a...))
	}
	isList := strings.HasPrefix(cmd, "LIST")
	ref := listedNames(seen[feRookery])
	for fe, l := range seen {
		got := listedNames(l)
		if fe != feRookery && !slices.Equal(got, ref) {
			bad("%s lists %q, %s %q", frontendNames[feRookery], ref, frontendNames[fe], got)
		}
		for _, w := range want {
			i := slices.IndexFunc(l, func(x listed) bool { return x.Name == w })
			switch {
			case i < 0:
				bad("%s does not list %s", frontendNames[fe], w)
			case isList && l[i].Noselect:
				bad("%s lists %s as \\Noselect", frontendNames[fe], w)
			}
		}
		for _, x := range l {
			if !x.Noselect && !slices.Contains(want, x.Name) {
				bad("%s lists %s, which alice should not see", frontendNames[fe], x.Name)
			}
		}
	}
	return problems
}

// procMem is the memory of an instance's processes of one name.
type procMem struct {
	Procs    int
	PSS, RSS uint64 // bytes
}

// instanceMemory is the proportional set size of the processes of the
// Cyrus instance in dir (each runs with dir's imapd.conf), by process
// name; nil if /proc cannot be read.
func instanceMemory(dir string) map[string]procMem {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	conf := filepath.Join(dir, "etc") + "/"
	out := map[string]procMem{}
	for _, e := range ents {
		pid := e.Name()
		if _, err := strconv.Atoi(pid); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), conf) {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join("/proc", pid, "comm"))
		name := strings.TrimSpace(string(comm))
		m := out[name]
		m.Procs++
		m.PSS += procFileKB(filepath.Join("/proc", pid, "smaps_rollup"), "Pss") * 1024
		m.RSS += procStatusKB(pid, "VmRSS") * 1024
		out[name] = m
	}
	return out
}

// procStatusKB is field key of /proc/PID/status in kB, 0 if unknown.
func procStatusKB(pid, key string) uint64 {
	return procFileKB(filepath.Join("/proc", pid, "status"), key)
}

// procFileKB reads a "Key: N kB" line of a /proc file; 0 if there is none.
func procFileKB(path, key string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseUint(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}
