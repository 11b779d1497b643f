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
		&ForkScenario{Engine: "srtp", open: openSRTP},
		&ForkScenario{Engine: "userspace", Relay: true, open: openUserspaceRelay},
		&ForkScenario{Engine: "ebpf", Relay: true, open: openEBPF},
		&ForkScenario{Engine: "rtpengine", Relay: true, open: openRTPEngine},
		&MuteScenario{},
		&CallsScenario{},
		&CCXMLScenario{},
	}
}

// Budget bounds each scenario: the quick suite must end within QuickDeadline.
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

// QuickDeadline bounds the whole quick suite: eight fork and relay
// scenarios of about seven seconds each and the calls ladder fit in it.
const QuickDeadline = 100 * time.Second
