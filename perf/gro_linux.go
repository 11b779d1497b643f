package perf

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ethtoolValue mirrors struct ethtool_value in linux/ethtool.h.
type ethtoolValue struct {
	cmd, data uint32
}

const ethtoolSGRO = 0x0000002c // ETHTOOL_SGRO

// setGRO turns generic receive offload on for an interface of the calling
// thread's namespace: a veth only accepts XDP-transmitted frames from its peer
// when it has an XDP program or GRO (its NAPI then runs).
func setGRO(ifname string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket for ethtool: %w", err)
	}
	defer unix.Close(fd)
	val := ethtoolValue{cmd: ethtoolSGRO, data: 1}
	var ifr [40]byte
	copy(ifr[:unix.IFNAMSIZ-1], ifname)
	*(*uintptr)(unsafe.Pointer(&ifr[unix.IFNAMSIZ])) = uintptr(unsafe.Pointer(&val))
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
		return fmt.Errorf("ethtool set gro on %s: %w", ifname, errno)
	}
	return nil
}
