package perf

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// CPU accounting. The kernel here has no IRQ time accounting, so softirq work
// done in a task's context (veth NAPI, loopback and veth delivery, TCX
// programs) lands in that task's sum_exec_runtime; softirq work deferred to
// ksoftirqd lands in ksoftirqd's. A CPU sample is therefore the runtime of
// every thread of the processes involved plus every ksoftirqd thread — the
// same footing for an in-process engine and for rtpengine.

// CPUSample is the summed run time of a set of tasks at one instant.
type CPUSample struct {
	At time.Time
	// Run is the summed sum_exec_runtime of the tasks.
	Run time.Duration
}

// CPUMeter samples the run time of processes (all their threads) and of the
// ksoftirqd threads.
type CPUMeter struct {
	self bool
	pids []int
	soft []int
}

// NewCPUMeter measures the given processes (0 means this process) and the
// ksoftirqd threads.
func NewCPUMeter(pids ...int) *CPUMeter {
	m := &CPUMeter{}
	for _, p := range pids {
		if p == 0 || p == os.Getpid() {
			m.self = true
			continue
		}
		m.pids = append(m.pids, p)
	}
	m.soft = ksoftirqdPIDs()
	return m
}

// Sample reads the current run time. Threads that exit between two samples
// take their run time with them; the suite's processes keep their threads for
// the length of a run.
func (m *CPUMeter) Sample() CPUSample {
	s := CPUSample{At: time.Now()}
	// This process: getrusage counts threads that have exited too (the
	// generator's threads, locked into a namespace, end with their
	// goroutines), and its user+system total is the precise run time.
	var ru unix.Rusage
	if m.self && unix.Getrusage(unix.RUSAGE_SELF, &ru) == nil {
		s.Run += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for _, p := range m.pids {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", p))
		for _, t := range tasks {
			s.Run += readSchedstat(t)
		}
	}
	for _, p := range m.soft {
		s.Run += readSchedstat(fmt.Sprintf("/proc/%d/schedstat", p))
	}
	return s
}

// Since returns the CPU time used since s.
func (m *CPUMeter) Since(s CPUSample) (cpu time.Duration, wall time.Duration) {
	now := m.Sample()
	return now.Run - s.Run, now.At.Sub(s.At)
}

// readSchedstat returns the first field of a schedstat file (run time in ns).
func readSchedstat(path string) time.Duration {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return ParseSchedstat(string(b))
}

// ParseSchedstat parses /proc/.../schedstat: "run_ns wait_ns slices".
func ParseSchedstat(s string) time.Duration {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0
	}
	v, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || v < 0 {
		return 0
	}
	return time.Duration(v)
}

func ksoftirqdPIDs() []int {
	var out []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "comm"))
		if err == nil && strings.HasPrefix(string(b), "ksoftirqd/") {
			out = append(out, pid)
		}
	}
	return out
}

// ProcRSS returns the resident set size of a process in bytes (0 = self).
func ProcRSS(pid int) (int64, error) {
	path := "/proc/self/status"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return ParseVmRSS(string(b))
}

// ParseVmRSS returns the VmRSS line of /proc/PID/status in bytes.
func ParseVmRSS(status string) (int64, error) {
	for _, line := range strings.Split(status, "\n") {
		if !strings.HasPrefix(line, "VmRSS:") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			break
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse VmRSS %q: %w", line, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("no VmRSS in status")
}
