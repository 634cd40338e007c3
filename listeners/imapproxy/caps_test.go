package imapproxy

import (
	"fmt"
	"reflect"
	"testing"
)

// TestSharedCaps: connections that announce the same capabilities share
// one set, others get their own, and the sets kept are bounded.
func TestSharedCaps(t *testing.T) {
	same := func(a, b map[string]bool) bool {
		return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
	}
	first := sharedCaps(map[string]bool{"IMAP4REV1": true, "IDLE": true, "TEST-SHARED": true})
	second := sharedCaps(map[string]bool{"TEST-SHARED": true, "IDLE": true, "IMAP4REV1": true})
	if !same(first, second) {
		t.Error("equal sets are not shared")
	}
	other := sharedCaps(map[string]bool{"IMAP4REV1": true, "TEST-SHARED": true})
	if same(first, other) || other["IDLE"] {
		t.Errorf("a different set shares the first one: %v", other)
	}
	for i := range maxCapSets + 10 {
		caps := map[string]bool{fmt.Sprintf("TEST-%d", i): true}
		sharedCaps(caps)
	}
	capSets.Lock()
	n := len(capSets.m)
	capSets.Unlock()
	if n > maxCapSets {
		t.Errorf("%d sets kept, want at most %d", n, maxCapSets)
	}
}
