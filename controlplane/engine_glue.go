package controlplane

import (
	"fmt"

	"github.com/recfork/recfork/dataplane"
)

// newEngine builds the configured media engine.
func newEngine(cfg Config) (dataplane.Engine, error) {
	return nil, fmt.Errorf("data plane %s: %w", cfg.Dataplane, dataplane.ErrNotSupported)
}
