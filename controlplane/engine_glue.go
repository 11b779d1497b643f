package controlplane

import (
	"net"
	"net/netip"

	"github.com/recfork/recfork/dataplane"
)

// newEngine builds the configured media engine (NewEngine), attaching the
// eBPF programs to the configured interfaces or, by default, to the one that
// owns the media address.
func newEngine(cfg Config) (dataplane.Engine, error) {
	mode := cfg.Dataplane
	if mode == DataplaneAuto && (cfg.MediaIP.IsLoopback() || cfg.SRS == "") {
		// The TCX fork clones copies out of a network interface towards a
		// remote recorder; it cannot fork on loopback nor to a recorder on
		// this host (the built-in SRS). Those setups get the userspace
		// engine, which can.
		reason := "built-in SRS is local"
		if cfg.MediaIP.IsLoopback() {
			reason = "media address is loopback"
		}
		cfg.Logger.Info("data plane: userspace chosen", "mode", mode, "ebpf_unsuitable", reason)
		mode = DataplaneUserspace
	}
	ifaces := cfg.Ifaces
	if len(ifaces) == 0 {
		if name := ifaceOwning(cfg.MediaIP); name != "" {
			ifaces = []string{name}
		}
	}
	return NewEngine(mode, EngineConfig{PortRange: cfg.RTPPorts, Interfaces: ifaces, LatchPolicy: cfg.Latch, Logger: cfg.Logger})
}

// ifaceOwning returns the name of the interface that has addr, or "".
func ifaceOwning(addr netip.Addr) string {
	ifs, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if pn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(pn.IP); ok && ip.Unmap() == addr.Unmap() {
					return ifc.Name
				}
			}
		}
	}
	return ""
}
