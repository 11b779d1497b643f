package perf

import "time"

// Suite returns the scenarios of `make bench`, in run order.
func Suite() []Scenario {
	return []Scenario{
		&BPFScenario{},
		&ForkScenario{Engine: "none", open: openUserspaceRelay},
		&ForkScenario{Engine: "userspace", open: openUserspace},
		&ForkScenario{Engine: "ebpf", open: openEBPF},
		&ForkScenario{Engine: "rtpengine", open: openRTPEngine},
		&MuteScenario{},
		&CallsScenario{},
		&CCXMLScenario{},
	}
}

// Budget bounds each scenario: the quick suite must end within a minute.
func Budget(quick bool) func(Scenario) time.Duration {
	return func(s Scenario) time.Duration {
		if quick {
			switch s.(type) {
			case *ForkScenario:
				return 11 * time.Second
			case *CallsScenario:
				return 22 * time.Second
			default:
				return 4 * time.Second
			}
		}
		switch s.(type) {
		case *ForkScenario, *CallsScenario:
			return 4 * time.Minute
		default:
			return 90 * time.Second
		}
	}
}

// QuickDeadline bounds the whole quick suite.
const QuickDeadline = 55 * time.Second
