//go:build unix

package controlplane

import "syscall"

// umask sets the process umask and returns the old one, so the admin socket
// is created 0600 without a window where it is wider.
func umask(m int) int { return syscall.Umask(m) }
