package controlplane

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/dataplane/ebpf"
	"github.com/recfork/recfork/dataplane/userspace"
)

// EngineConfig configures NewEngine.
type EngineConfig struct {
	// PortRange is where endpoints take their RTP/RTCP pairs; zero means
	// dataplane.DefaultPortRange.
	PortRange dataplane.PortRange
	// Interfaces are the media interfaces the eBPF fork programs attach to;
	// empty means every interface that is up, is not loopback and has an
	// Ethernet address. The userspace engine ignores it.
	Interfaces []string
	// LatchPolicy is the latch rule of both engines (the eBPF engine takes
	// its userspace engine's); zero is dataplane.LatchAddress.
	LatchPolicy dataplane.LatchPolicy
	// Logger receives the engines' log lines and the selection line; nil
	// means slog.Default().
	Logger *slog.Logger
}

// Data-plane modes of the --dataplane flag.
const (
	DataplaneAuto      = "auto"
	DataplaneEBPF      = "ebpf"
	DataplaneUserspace = "userspace"
)

// NewEngine builds the media engine for a --dataplane mode. "userspace" is the
// portable engine. "ebpf" is the userspace engine for endpoints and joins with
// forks made in the kernel by TCX programs; if it cannot load or attach, the
// error wraps dataplane.ErrNotSupported and says what is missing (privileges,
// kernel version, BTF). "auto" (or "") is "ebpf" when it works and otherwise
// "userspace", with one log line saying why. The eBPF engine is created in the
// network namespace of the calling thread.
func NewEngine(mode string, cfg EngineConfig) (dataplane.Engine, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	switch mode {
	case DataplaneAuto, "", DataplaneEBPF, DataplaneUserspace:
	default:
		return nil, fmt.Errorf("dataplane %q (want auto, ebpf or userspace): %w", mode, ErrBadConfig)
	}
	// Relays may leave as UDP GSO batches in either mode: the userspace copy
	// path copies them itself, and the eBPF egress program copies every
	// datagram of a batch.
	media, err := userspace.New(userspace.Config{PortRange: cfg.PortRange, Logger: log.With("component", "dataplane"), GSORelays: true, LatchPolicy: cfg.LatchPolicy})
	if err != nil {
		return nil, fmt.Errorf("userspace engine: %w", err)
	}
	if mode == DataplaneUserspace {
		return media, nil
	}
	e, err := ebpf.New(ebpf.Config{Media: media, Interfaces: cfg.Interfaces, Logger: log.With("component", "dataplane")})
	if err == nil {
		log.Info("data plane selected", "engine", e.Name(), "mode", modeName(mode))
		return e, nil
	}
	// ebpf.New leaves Media open when it fails.
	missing := ebpfMissing()
	if mode == DataplaneEBPF {
		media.Close()
		if missing != "" {
			return nil, fmt.Errorf("ebpf engine (%s): %w", missing, err)
		}
		return nil, fmt.Errorf("ebpf engine: %w", err)
	}
	reason := err.Error()
	if missing != "" {
		reason = missing + ": " + reason
	}
	log.Info("data plane selected", "engine", media.Name(), "mode", modeName(mode), "ebpf_unavailable", reason)
	return media, nil
}

func modeName(mode string) string {
	if mode == "" {
		return DataplaneAuto
	}
	return mode
}

// ebpfMissing names what this host lacks for the eBPF engine, as far as can
// be told without trying: privileges, a kernel with TCX (6.6) and kernel BTF.
// The engine's own error says what actually failed.
func ebpfMissing() string {
	if runtime.GOOS != "linux" {
		return "eBPF needs Linux"
	}
	var missing []string
	if !hasBPFCaps() {
		missing = append(missing, "privileges: run as root or grant CAP_BPF and CAP_NET_ADMIN")
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		rel := strings.TrimSpace(string(b))
		if major, minor, ok := kernelVersion(rel); ok && (major < 6 || major == 6 && minor < 6) {
			missing = append(missing, "kernel "+rel+" has no TCX links (needs Linux 6.6 or newer)")
		}
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); errors.Is(err, os.ErrNotExist) {
		missing = append(missing, "no kernel BTF (/sys/kernel/btf/vmlinux; CONFIG_DEBUG_INFO_BTF)")
	}
	return strings.Join(missing, "; ")
}

// hasBPFCaps reports whether the process holds CAP_BPF (or CAP_SYS_ADMIN)
// and CAP_NET_ADMIN in its effective set (CapEff in /proc/self/status).
func hasBPFCaps() bool {
	const capNetAdmin, capSysAdmin, capBPF = 12, 21, 39
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return os.Geteuid() == 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			eff, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				break
			}
			has := func(c uint) bool { return eff&(1<<c) != 0 }
			return (has(capBPF) || has(capSysAdmin)) && has(capNetAdmin)
		}
	}
	return os.Geteuid() == 0
}

// kernelVersion parses "6.18.44-foo" into 6, 18.
func kernelVersion(release string) (major, minor int, ok bool) {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	digits := strings.IndexFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' })
	if digits >= 0 {
		parts[1] = parts[1][:digits]
	}
	minor, err2 := strconv.Atoi(parts[1])
	return major, minor, err1 == nil && err2 == nil
}
