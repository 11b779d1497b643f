package testenv

import (
	"net"
	"testing"
	"time"
)

func TestVethCarriesUDP(t *testing.T) {
	a, b := NewNetns(t), NewNetns(t)
	NewVeth(t, a, b, "10.99.0.1/24", "10.99.0.2/24")
	var conn *net.UDPConn
	b.MustDo(t, func() (err error) {
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 99, 0, 2), Port: 4000})
		return err
	})
	defer conn.Close()
	a.MustDo(t, func() error {
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(10, 99, 0, 2), Port: 4000})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("ping"))
		return err
	})
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, _, err := conn.ReadFromUDP(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
}

func TestVethIPv6(t *testing.T) {
	a, b := NewNetns(t), NewNetns(t)
	NewVeth(t, a, b, "fd99::1/64", "fd99::2/64")
	out := a.MustIP(t, "-6", "addr", "show")
	if len(out) == 0 {
		t.Fatal("no addresses")
	}
}

func TestUniqueNameFitsInterfaceName(t *testing.T) {
	for i := 0; i < 1000; i++ {
		if n := UniqueName("vethx"); len(n) > 15 {
			t.Fatalf("%q is longer than IFNAMSIZ-1", n)
		}
	}
}
