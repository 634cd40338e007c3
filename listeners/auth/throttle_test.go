package auth

import (
	"errors"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	th := NewThrottle(3, time.Minute, []netip.Prefix{netip.MustParsePrefix("192.168.0.0/24")}, nil)
	now := time.Unix(1e9, 0)
	th.now = func() time.Time { return now }
	a := "10.0.0.1:1111"
	b := "10.0.0.2:2222"
	asked := 0
	wrong := func() error { asked++; return ErrBadCredentials }
	right := func() error { asked++; return nil }
	down := func() error { asked++; return ErrUnavailable }

	// Unavailability is no guess and counts nothing.
	for range 5 {
		th.Check(a, "alice", down)
	}
	th.Check(a, "alice", wrong)
	th.Check(a, "bob", wrong)
	if err := th.Check(a, "carol", right); err != nil {
		t.Fatalf("before the limit: %v", err)
	}
	th.Check("10.0.0.1:3333", "dave", wrong) // the third from a's address
	asked = 0
	if err := th.Check(a, "carol", right); !errors.Is(err, ErrThrottled) || asked != 0 {
		t.Fatalf("address over the limit: %v, asked %d", err, asked)
	}
	if err := th.Check(b, "carol", right); err != nil {
		t.Fatalf("another address: %v", err)
	}
	if th.Tripped() != 1 {
		t.Errorf("tripped %d", th.Tripped())
	}

	// Per user, from many addresses.
	for i := range 3 {
		th.Check("10.1.0."+strconv.Itoa(i)+":1", "erin", wrong)
	}
	if err := th.Check(b, "erin", right); !errors.Is(err, ErrThrottled) {
		t.Fatalf("user over the limit: %v", err)
	}

	// Blocks end after the window.
	now = now.Add(time.Minute + time.Second)
	if err := th.Check(a, "erin", right); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	// A right password clears the user's count.
	th.Check(b, "frank", wrong)
	th.Check(b, "frank", wrong)
	th.Check(b, "frank", right)
	th.Check("10.2.0.1:5", "frank", wrong)
	if err := th.Check("10.2.0.2:5", "frank", right); err != nil {
		t.Fatalf("count not cleared by a success: %v", err)
	}
	// Failures spread wider than the window never trip.
	for range 5 {
		now = now.Add(2 * time.Minute)
		th.Check("10.3.0.1:5", "gina", wrong)
		th.Check("10.3.0.1:5", "gina", wrong)
	}
	if err := th.Check("10.3.0.1:5", "gina", right); err != nil {
		t.Fatalf("slow failures tripped: %v", err)
	}
	// An exempt address is not blocked by address, its users still are.
	for i := range 5 {
		th.Check("192.168.0.9:1", "user"+strconv.Itoa(i), wrong)
	}
	if err := th.Check("192.168.0.9:1", "hank", right); err != nil {
		t.Fatalf("exempt address blocked: %v", err)
	}
	for range 3 {
		th.Check("192.168.0.9:1", "ivy", wrong)
	}
	if err := th.Check("192.168.0.9:1", "ivy", right); !errors.Is(err, ErrThrottled) {
		t.Fatalf("user from an exempt address: %v", err)
	}
	var nilThrottle *Throttle
	if err := nilThrottle.Check(a, "x", right); err != nil {
		t.Fatal(err)
	}
}

// TestThrottleStrangerCannotLockOut: failing on purpose for a user's name
// blocks the stranger's address and the user's name at new addresses,
// but not the user at an address she logged in from before.
func TestThrottleStrangerCannotLockOut(t *testing.T) {
	th := NewThrottle(3, time.Minute, []netip.Prefix{netip.MustParsePrefix("192.168.0.0/24")}, nil)
	now := time.Unix(1e9, 0)
	th.now = func() time.Time { return now }
	wrong := func() error { return ErrBadCredentials }
	right := func() error { return nil }
	home, webmail := "10.0.0.1:1", "192.168.0.5:1"

	if err := th.Check(home, "alice", right); err != nil {
		t.Fatal(err)
	}
	if err := th.Check(webmail, "alice", right); err != nil {
		t.Fatal(err)
	}
	for i := range 6 { // from many addresses, so none trips by address
		th.Check("10.9.0."+strconv.Itoa(i)+":1", "alice", wrong)
	}
	if err := th.Check(home+"0", "alice", right); err != nil {
		t.Errorf("alice at a known address, another port: %v", err)
	}
	if err := th.Check("10.0.0.2:1", "alice", right); !errors.Is(err, ErrThrottled) {
		t.Errorf("alice's name at a new address: %v, want throttled", err)
	}
	if err := th.Check(webmail, "alice", right); !errors.Is(err, ErrThrottled) {
		t.Errorf("alice's name at a shared (exempt) address: %v, want throttled", err)
	}

	// A stranger at one address is blocked by it, alice at home is not.
	now = now.Add(2 * time.Minute)
	for range 3 {
		th.Check("10.8.0.1:1", "alice", wrong)
	}
	if err := th.Check("10.8.0.1:1", "bob", right); !errors.Is(err, ErrThrottled) {
		t.Errorf("the stranger's address: %v, want throttled", err)
	}
	if err := th.Check(home, "alice", right); err != nil {
		t.Errorf("alice at home after a stranger's failures: %v", err)
	}

	// An address is known for knownFor after the last login from it.
	now = now.Add(knownFor)
	for i := range 3 {
		th.Check("10.7.0."+strconv.Itoa(i)+":1", "alice", wrong)
	}
	if err := th.Check(home, "alice", right); !errors.Is(err, ErrThrottled) {
		t.Errorf("alice at an address not used for %v: %v, want throttled", knownFor, err)
	}
}

func TestThrottleKnownBounded(t *testing.T) {
	th := NewThrottle(3, time.Minute, nil, nil)
	now := time.Unix(1e9, 0)
	th.now = func() time.Time { return now }
	for i := range maxKnown + 3 {
		th.Check("10.0.0."+strconv.Itoa(i)+":1", "alice", func() error { return nil })
	}
	if n := len(th.known["alice"]); n != maxKnown {
		t.Errorf("alice has %d known addresses, want %d", n, maxKnown)
	}
	if th.knownLocked("alice", "10.0.0.0", now) || !th.knownLocked("alice", "10.0.0."+strconv.Itoa(maxKnown+2), now) {
		t.Error("the oldest address should go first")
	}
}
