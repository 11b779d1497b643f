package perf

import (
	"bytes"
	"fmt"
	"runtime/pprof"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/google/pprof/profile"
)

// Where the time goes: a CPU profile of the suite's process (the userspace
// engine runs in it) and BPF run-time statistics of the eBPF engine's TCX
// ingress program, both taken over the windows with forks.

// cpuProfile records a CPU profile until stop is called, which returns the
// top functions by self time as "name pct%" strings.
type cpuProfile struct {
	buf bytes.Buffer
	on  bool
}

func startCPUProfile() *cpuProfile {
	p := &cpuProfile{}
	p.on = pprof.StartCPUProfile(&p.buf) == nil
	return p
}

func (p *cpuProfile) stop(top int) []string {
	if !p.on {
		return nil
	}
	pprof.StopCPUProfile()
	prof, err := profile.Parse(&p.buf)
	if err != nil {
		return nil
	}
	return topFunctions(prof, top)
}

// topFunctions sums each sample's CPU value onto its leaf function.
func topFunctions(prof *profile.Profile, top int) []string {
	idx := len(prof.SampleType) - 1 // cpu nanoseconds
	flat := map[string]int64{}
	var total int64
	for _, s := range prof.Sample {
		if len(s.Location) == 0 || len(s.Value) <= idx {
			continue
		}
		v := s.Value[idx]
		total += v
		name := leafName(s)
		flat[name] += v
	}
	if total == 0 {
		return nil
	}
	type kv struct {
		name string
		v    int64
	}
	var all []kv
	for k, v := range flat {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v || all[i].v == all[j].v && all[i].name < all[j].name })
	var out []string
	for i := 0; i < len(all) && i < top; i++ {
		out = append(out, fmt.Sprintf("%s %.0f%%", shortFunc(all[i].name), 100*float64(all[i].v)/float64(total)))
	}
	return out
}

// leafName names the sample's innermost function outside the Go runtime and
// the system-call wrappers: time spent in the kernel (system calls, and the
// softirq work they trigger) is charged to the code that made the call.
func leafName(s *profile.Sample) string {
	first := "?"
	for i, loc := range s.Location {
		for _, ln := range loc.Line {
			if ln.Function == nil {
				continue
			}
			n := ln.Function.Name
			if i == 0 && first == "?" {
				first = n
			}
			if !wrapper(n) {
				if n != first {
					return n + " (syscalls)"
				}
				return n
			}
		}
	}
	return first
}

func wrapper(n string) bool {
	for _, p := range []string{"syscall.", "internal/runtime/syscall", "golang.org/x/sys/unix.", "runtime.",
		"github.com/cilium/ebpf/internal", "golang.org/x/net/internal/socket."} {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	return false
}

// shortFunc drops the module path of a function name.
func shortFunc(s string) string {
	if i := strings.LastIndex(s, "/"); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// progRun accumulates BPF run-time statistics of one program.
type progRun struct {
	prog          *ebpf.Program
	runtimeNs     uint64
	runs          uint64
	lastNs, lastN uint64
}

func (p *progRun) mark() {
	if p == nil {
		return
	}
	if st, err := p.prog.Stats(); err == nil {
		p.lastNs, p.lastN = uint64(st.Runtime), st.RunCount
	}
}

func (p *progRun) add() {
	if p == nil {
		return
	}
	if st, err := p.prog.Stats(); err == nil {
		p.runtimeNs += uint64(st.Runtime) - p.lastNs
		p.runs += st.RunCount - p.lastN
	}
}

func (p *progRun) nsPerRun() float64 {
	if p == nil || p.runs == 0 {
		return 0
	}
	return float64(p.runtimeNs) / float64(p.runs)
}
