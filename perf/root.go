package perf

import (
	"os"
	"runtime"
	"syscall"
)

func needRoot() error {
	if os.Geteuid() != 0 {
		return Skip("needs root (network namespaces, CAP_BPF, CAP_NET_ADMIN)")
	}
	return nil
}

// RaiseFileLimit lifts RLIMIT_NOFILE towards want (the hard limit too, where
// the process may) and returns the soft limit now in force. The fork
// scenarios size their stream counts to it: each forked stream holds six
// sockets in the engine, and rtpengine needs as many.
func RaiseFileLimit(want uint64) uint64 {
	// syscall's Setrlimit (not x/sys/unix's) also stops Go from restoring the
	// old limit in children, so rtpengine inherits the raised one.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 1024
	}
	if lim.Cur >= want {
		return lim.Cur
	}
	raised := lim
	raised.Cur, raised.Max = want, max(lim.Max, want)
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
		return want
	}
	lim.Cur = lim.Max
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		return lim.Max
	}
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	return lim.Cur
}

// SeparateGenerator gives the Go scheduler room for the load generator next
// to the in-process engines: a goroutine in a long system call (a live-frames
// test run waits ~25 ms in the kernel) keeps its P until sysmon takes it back,
// up to 10 ms later, so with GOMAXPROCS equal to the cores the generator would
// starve the engine's goroutines as no separate process would. The engines
// keep one worker per core.
func SeparateGenerator() {
	runtime.GOMAXPROCS(2*runtime.NumCPU() + 1)
}
