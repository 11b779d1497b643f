package testenv

import (
	"os"
	"testing"
)

// PrivilegedEnv is the environment variable CI sets to make privileged tests
// mandatory: with it set to 1, a test that cannot get the privileges it needs
// fails instead of skipping, so CI can never go green by skipping.
const PrivilegedEnv = "RECFORK_PRIVILEGED"

// Required reports whether privileged tests must run (RECFORK_PRIVILEGED=1).
func Required() bool { return os.Getenv(PrivilegedEnv) == "1" }

// Privileged gates a test that needs root (CAP_NET_ADMIN, CAP_BPF). Without root
// it skips with a reason, unless RECFORK_PRIVILEGED=1, where it fails.
func Privileged(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() == 0 {
		return
	}
	Unavailable(tb, "needs root (CAP_NET_ADMIN and CAP_BPF); run as root or unset "+PrivilegedEnv)
}

// Unavailable ends a test whose environment lacks something it needs: a skip
// with the reason, or a failure when RECFORK_PRIVILEGED=1.
func Unavailable(tb testing.TB, reason string) {
	tb.Helper()
	if Required() {
		tb.Fatalf("%s=1 but the test cannot run: %s", PrivilegedEnv, reason)
	}
	tb.Skip(reason)
}
