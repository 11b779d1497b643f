package perf

import (
	"context"
	"fmt"
)

// CallsScenario drives recforkd with sipp.
type CallsScenario struct{}

func (*CallsScenario) Name() string { return "calls" }
func (*CallsScenario) Keys() []string {
	return []string{"baseline.sipp_uas_cps", "calls.cps", "calls.concurrent", "calls.bytes_per_call"}
}
func (*CallsScenario) Steps(bool) int { return 3 }
func (*CallsScenario) Run(ctx context.Context, env *Env) error {
	return fmt.Errorf("recforkd cannot record calls yet: %w", ErrNotBuilt)
}

