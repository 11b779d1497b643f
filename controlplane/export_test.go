package controlplane

import "time"

// SetSessionTimerWait shortens session timers for a test and restores them
// when cleanup runs.
func SetSessionTimerWait(d time.Duration) (restore func()) {
	old := sessionTimerWait
	sessionTimerWait = func(int) time.Duration { return d }
	return func() { sessionTimerWait = old }
}
