package controlplane

import (
	"time"

	"github.com/recfork/recfork/dataplane"
)

// SetSessionTimerWait shortens session timers for a test and restores them
// when cleanup runs.
func SetSessionTimerWait(d time.Duration) (restore func()) {
	old := testSessionWait.Swap(int64(d))
	return func() { testSessionWait.Store(old) }
}

// SetSessionRefreshAt shortens the time recfork waits before refreshing a
// session it is the refresher of, for a test.
func SetSessionRefreshAt(d time.Duration) (restore func()) {
	old := testRefreshAt.Swap(int64(d))
	return func() { testRefreshAt.Store(old) }
}

// FitCalls is Limits.MaxCalls after the defaults and the fit to the port
// range and the fd limit.
func FitCalls(l Limits, r dataplane.PortRange, nofile uint64) int {
	n, _ := l.withDefaults().fitCalls(r, nofile)
	return n
}

// MaxReflected is the reflection bound of reflect.go, in datagrams.
const MaxReflected = maxReflected
