//go:build !linux || !(386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"fmt"
	"runtime"

	"github.com/recfork/recfork/dataplane"
)

// Engine is the eBPF engine; on this platform it cannot be created.
type Engine struct{ dataplane.Engine }

// New fails with dataplane.ErrNotSupported: the fork programs need Linux and a
// little-endian architecture the committed objects were built for.
func New(cfg Config) (*Engine, error) {
	return nil, fmt.Errorf("ebpf engine on %s/%s: %w", runtime.GOOS, runtime.GOARCH, dataplane.ErrNotSupported)
}
