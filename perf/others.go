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

// CCXMLScenario measures the interpreter.
type CCXMLScenario struct{}

func (*CCXMLScenario) Name() string { return "ccxml" }
func (*CCXMLScenario) Keys() []string {
	return []string{"baseline.goja_calls_per_s", "ccxml.events_per_s", "ccxml.bytes_per_session"}
}
func (*CCXMLScenario) Steps(bool) int { return 3 }
func (*CCXMLScenario) Run(ctx context.Context, env *Env) error {
	return fmt.Errorf("not written yet: %w", ErrNotBuilt)
}
