package perf

import "os"

func needRoot() error {
	if os.Geteuid() != 0 {
		return Skip("needs root (network namespaces, CAP_BPF, CAP_NET_ADMIN)")
	}
	return nil
}
