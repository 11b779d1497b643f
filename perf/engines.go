package perf

import (
	"context"
	"fmt"
)

// The recfork engines under test. They are opened inside the media
// namespace of the pair.

func openUserspaceRelay(ctx context.Context, env *Env, p *Pair) (forkSubject, error) {
	return nil, fmt.Errorf("dataplane/userspace has no engine yet: %w", ErrNotBuilt)
}

func openUserspace(ctx context.Context, env *Env, p *Pair) (forkSubject, error) {
	return nil, fmt.Errorf("dataplane/userspace has no engine yet: %w", ErrNotBuilt)
}

func openEBPF(ctx context.Context, env *Env, p *Pair) (forkSubject, error) {
	return nil, fmt.Errorf("dataplane/ebpf has no engine yet: %w", ErrNotBuilt)
}
