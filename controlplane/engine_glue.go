package controlplane

import (
	"fmt"

	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/dataplane/userspace"
)

// newEngine builds the configured media engine.
func newEngine(cfg Config) (dataplane.Engine, error) {
	switch cfg.Dataplane {
	case "userspace", "auto":
		e, err := userspace.New(userspace.Config{PortRange: cfg.RTPPorts, Logger: cfg.Logger.With("component", "dataplane")})
		if err != nil {
			return nil, fmt.Errorf("userspace engine: %w", err)
		}
		return e, nil
	}
	return nil, fmt.Errorf("data plane %s: %w", cfg.Dataplane, dataplane.ErrNotSupported)
}
