package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rookery/rookery/listeners/auth"
)

// passwd prints the users-file value of a password ("{SCHEME}hash"), as
// `doveadm pw` does: asked twice, without echo, on a terminal; read as one
// line from standard input otherwise (for scripts).
func passwd(stdin *os.File, stdout, stderr io.Writer, args []string) int {
	fs := flag.NewFlagSet("node passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scheme := fs.String("scheme", "ARGON2ID", "ARGON2ID, BLF-CRYPT, SHA512-CRYPT or SHA256-CRYPT")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "node passwd: no arguments expected (the password is read from the terminal or standard input)")
		return 2
	}
	pw, err := readPassword(stdin, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "node passwd:", err)
		return 1
	}
	v, err := auth.MakeSecret(*scheme, pw)
	if err != nil {
		fmt.Fprintln(stderr, "node passwd:", err)
		return 2
	}
	fmt.Fprintln(stdout, v)
	return 0
}

func readPassword(in *os.File, prompt io.Writer) (string, error) {
	fd := int(in.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		// Not a terminal: one line, its end trimmed.
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return "", errors.New("empty password")
		}
		return line, nil
	}
	noEcho := *old
	noEcho.Lflag &^= unix.ECHO
	noEcho.Lflag |= unix.ICANON
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
		return "", fmt.Errorf("turning echo off: %w", err)
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	r := bufio.NewReader(in)
	ask := func(p string) (string, error) {
		fmt.Fprint(prompt, p)
		line, err := r.ReadString('\n')
		fmt.Fprintln(prompt)
		return strings.TrimRight(line, "\r\n"), err
	}
	first, err := ask("Enter new password: ")
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	second, err := ask("Retype new password: ")
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	if first != second {
		return "", errors.New("passwords do not match")
	}
	if first == "" {
		return "", errors.New("empty password")
	}
	return first, nil
}
