//go:build race

package imapproxy_test

// raceEnabled: the race detector adds its own memory to every goroutine
// and allocation, so memory figures mean nothing under it.
const raceEnabled = true
