//go:build !race

package imapproxy_test

const raceEnabled = false
