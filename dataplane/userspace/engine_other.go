//go:build !linux

package userspace

import (
	"fmt"

	"github.com/recfork/recfork/dataplane"
)

// Engine is not available on this platform.
type Engine struct{ dataplane.Engine }

// New reports dataplane.ErrNotSupported: the engine needs Linux's epoll,
// recvmmsg and sendmmsg.
func New(cfg Config) (*Engine, error) {
	return nil, fmt.Errorf("userspace engine: %w", dataplane.ErrNotSupported)
}
