//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/dataplane/userspace"
	"github.com/recfork/recfork/internal/testenv"
)

// BenchmarkProgram measures each path of the fork program with test runs
// (BPF_PROG_TEST_RUN): the kernel times b.N runs and reports ns per packet.
// The active path includes the clone and its transmission on a veth.
func BenchmarkProgram(b *testing.B) {
	p := newProgEnv(b)
	ap := netip.MustParseAddrPort
	remote, local, muted := ap("192.0.2.7:40000"), ap("10.0.0.1:20000"), ap("10.0.0.1:20002")
	rec, src := ap("10.9.0.9:30000"), ap("10.0.0.1:20010")
	p.addStream(b, local, dataplane.Inbound, dataplane.Active, rec, src)
	p.addStream(b, muted, dataplane.Inbound, dataplane.Inactive, rec, src)
	in := func(dst netip.AddrPort) []byte {
		return buildFrame(frameSpec{srcMAC: peerMAC, dstMAC: ourMAC, src: remote, dst: dst, payload: rtpPayload(1, 160)})
	}
	tcp := buildFrame(frameSpec{srcMAC: peerMAC, dstMAC: ourMAC, src: remote, dst: local, payload: rtpPayload(1, 160), proto: 6})
	for _, c := range []struct {
		name  string
		frame []byte
	}{
		{"not UDP", tcp},
		{"miss", in(ap("10.0.0.1:20100"))},
		{"inactive", in(muted)},
		{"active clone", in(local)},
	} {
		b.Run(c.name, func(b *testing.B) {
			var d time.Duration
			p.ns.MustDo(b, func() (err error) {
				_, d, err = p.objs.RtpforkIngress.Benchmark(c.frame, b.N, nil)
				return err
			})
			b.ReportMetric(float64(d.Nanoseconds()), "ns/pkt")
		})
	}
}

// BenchmarkSetForkMode measures a mute and an unmute from Go: the map
// update, and for a mute also the wait for running programs. p50 and p99 are
// reported per kind.
func BenchmarkSetForkMode(b *testing.B) {
	tp := newTopology2(b)
	e := newEngine(b, tp.eng, tp.ifaces)
	rec := listenPair(b, tp.rec, tp.recIP)
	a := openEndpoint(b, tp.eng, e, tp.engIP, netip.AddrPort{})
	src := openEndpoint(b, tp.eng, e, tp.engIP, netip.AddrPort{})
	if err := e.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: rec.addr, Source: src.ID}); err != nil {
		b.Fatal(err)
	}
	mute := make([]time.Duration, 0, b.N)
	unmute := make([]time.Duration, 0, b.N)
	put := make([]time.Duration, 0, b.N)
	e.mu.Lock()
	f := e.forks[forkID{a.ID, dataplane.Inbound}]
	key, val := f.key, f.val
	val.Flags |= streamFlagFork // as writeEntryLocked writes it
	e.mu.Unlock()
	b.ResetTimer()
	for range b.N {
		// The bare map write, without waiting for running programs.
		t0 := time.Now()
		if err := e.objs.Streams.Update(&key, &val, ebpf.UpdateExist); err != nil {
			b.Fatal(err)
		}
		put = append(put, time.Since(t0))
	}
	for range b.N {
		t0 := time.Now()
		if err := e.SetForkMode(a.ID, dataplane.Inbound, dataplane.Inactive); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := e.SetForkMode(a.ID, dataplane.Inbound, dataplane.Active); err != nil {
			b.Fatal(err)
		}
		mute, unmute = append(mute, t1.Sub(t0)), append(unmute, time.Since(t1))
	}
	b.StopTimer()
	for _, s := range []struct {
		name string
		d    []time.Duration
	}{{"mute", mute}, {"unmute", unmute}, {"put", put}} {
		slices.Sort(s.d)
		b.ReportMetric(float64(s.d[len(s.d)/2].Nanoseconds()), s.name+"-p50-ns")
		b.ReportMetric(float64(s.d[len(s.d)*99/100].Nanoseconds()), s.name+"-p99-ns")
	}
}

// newTopology2 is the one-link topology for benchmarks: the engine's
// namespace and a peer namespace holding the parties and the recorder.
func newTopology2(b *testing.B) *topology {
	b.Helper()
	f := families[0]
	tp := &topology{eng: testenv.NewNetns(b), remote: testenv.NewNetns(b)}
	v := testenv.NewVeth(b, tp.eng, tp.remote, f.cidr(1, 1), f.cidr(1, 2))
	tp.engIP, tp.remoteIP, tp.rec, tp.recIP = f.addr(1, 1), f.addr(1, 2), tp.remote, f.addr(1, 2)
	tp.ifaces, tp.recLink = []string{v.AName}, v.AName
	return tp
}

// systemCPU is the busy time of all CPUs (/proc/stat: everything but idle
// and iowait), which also counts softirq work done outside this process.
func systemCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var ticks uint64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseUint(v, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

func processCPU() time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCopyCPU compares the CPU one copied packet costs with the eBPF
// engine and with the userspace engine, in the same run: the process's CPU
// time (which includes the veth softirq work done on its threads) for b.N
// received packets with an active fork, minus the same without a fork. The
// recorder is an address on the link with a fixed neighbour entry that no
// host answers to, so the copies cost both engines the same to deliver (the
// peer drops frames not addressed to it) and only making them is measured;
// the forks' own counters tell when every copy has left.
//
// On the eBPF side it also reports the kernel's own run-time statistics of
// the ingress program: the extra nanoseconds per run of an active fork over
// an inactive one are what a copy costs the kernel (clone and transmit
// included), free of the noise other processes add to CPU accounting.
func BenchmarkCopyCPU(b *testing.B) {
	cost := map[string]float64{}
	statsOn, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enable bpf run-time stats: %v", err)
	}
	defer statsOn.Close()
	for _, name := range []string{"ebpf", "userspace"} {
		n := max(b.N, 20000)
		tp := newTopology2(b)
		var e dataplane.Engine
		if name == "ebpf" {
			e = newEngine(b, tp.eng, tp.ifaces)
		} else {
			tp.eng.MustDo(b, func() (err error) {
				e, err = userspace.New(userspace.Config{PortRange: testRange})
				return err
			})
			b.Cleanup(func() { e.Close() })
		}
		recIP := families[0].addr(1, 99)
		tp.eng.MustIP(b, "neigh", "replace", recIP.String(), "lladdr", "02:00:00:00:00:99", "dev", tp.recLink, "nud", "permanent")
		open := func(remote netip.AddrPort) dataplane.EndpointInfo {
			var info dataplane.EndpointInfo
			tp.eng.MustDo(b, func() (err error) {
				info, err = e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: tp.engIP, Remote: remote})
				return err
			})
			return info
		}
		party := listenPair(b, tp.remote, tp.remoteIP)
		a, src := open(party.addr), open(netip.AddrPort{})
		pkt := rtpPayload(1, 160)
		var sent uint64
		const burst = 128
		// run sends n packets in bursts, each burst waiting until the
		// endpoint has them all and, with a fork, all their copies left.
		var progTime [2]time.Duration
		var progRuns [2]uint64
		progStats := func() (time.Duration, uint64) {
			if ee, ok := e.(*Engine); ok {
				if st, err := ee.objs.RtpforkIngress.Stats(); err == nil {
					return st.Runtime, st.RunCount
				}
			}
			return 0, 0
		}
		run := func(forked bool) (proc, sys time.Duration) {
			start, startSys := processCPU(), systemCPU()
			rt0, rc0 := progStats()
			defer func() {
				rt1, rc1 := progStats()
				i := 0
				if forked {
					i = 1
				}
				progTime[i] += rt1 - rt0
				progRuns[i] += rc1 - rc0
			}()
			s, _ := e.ForkStats(a.ID, dataplane.Inbound)
			base := s.CopiedPackets
			for i := 0; i < n; i += burst {
				for j := 0; j < burst && i+j < n; j++ {
					send(b, party.rtp, a.Local, pkt)
					sent++
				}
				want := min(uint64(i+burst), uint64(n))
				deadline := time.Now().Add(waitLimit)
				for {
					s, err := e.EndpointStats(a.ID)
					if err != nil {
						b.Fatal(err)
					}
					var copied uint64
					if forked {
						fs, err := e.ForkStats(a.ID, dataplane.Inbound)
						if err != nil {
							b.Fatal(err)
						}
						copied = fs.CopiedPackets - base
					}
					if s.RxPackets >= sent && (!forked || copied >= want) {
						break
					}
					if time.Now().After(deadline) {
						b.Fatalf("%s: endpoint received %d of %d, copied %d of %d", name, s.RxPackets, sent, copied, want)
					}
					// A short nap, not a busy loop: the wait itself
					// must cost next to no CPU.
					time.Sleep(100 * time.Microsecond)
				}
			}
			return processCPU() - start, systemCPU() - startSys
		}
		// The difference between an active and an inactive fork is exactly
		// the making of the copies; rounds alternate to share any drift.
		if err := e.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: netip.AddrPortFrom(recIP, 30000), Source: src.ID, Mode: dataplane.Inactive}); err != nil {
			b.Fatal(err)
		}
		run(false) // warm up
		var plain, forked, plainSys, forkedSys time.Duration
		const rounds = 4
		for range rounds {
			p, ps := run(false)
			plain, plainSys = plain+p, plainSys+ps
			if err := e.SetForkMode(a.ID, dataplane.Inbound, dataplane.Active); err != nil {
				b.Fatal(err)
			}
			f, fs := run(true)
			forked, forkedSys = forked+f, forkedSys+fs
			if err := e.SetForkMode(a.ID, dataplane.Inbound, dataplane.Inactive); err != nil {
				b.Fatal(err)
			}
		}
		n *= rounds
		if u, ok := e.(*userspace.Engine); ok && u.SendErrors() > 0 {
			b.Fatalf("userspace engine: %d send errors", u.SendErrors())
		}
		b.Logf("%s: %d packets, process CPU %v inactive, %v active; system %v, %v", name, n, plain, forked, plainSys, forkedSys)
		cost[name] = float64((forked - plain).Nanoseconds()) / float64(n)
		b.ReportMetric(cost[name], name+"-cpu-ns/copy")
		b.ReportMetric(float64((forkedSys-plainSys).Nanoseconds())/float64(n), name+"-syscpu-ns/copy")
		if progRuns[0] > 0 && progRuns[1] > 0 {
			per := func(i int) float64 { return float64(progTime[i].Nanoseconds()) / float64(progRuns[i]) }
			b.ReportMetric(per(1)-per(0), name+"-kernel-ns/copy")
		}
	}
	if cost["userspace"] > 0 {
		b.ReportMetric(cost["ebpf"]/cost["userspace"], "ebpf/userspace")
	}
}
