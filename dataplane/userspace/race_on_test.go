//go:build race

package userspace

// raceEnabled: the race runtime allocates on its own now and then.
const raceEnabled = true
