package xdpgen

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// HeaderLen is the length of the ethernet, IPv4 and UDP headers of a frame.
const HeaderLen = 42

// PayloadLen is the UDP payload of every frame: a 12-byte RTP header and 20 ms
// of PCMU (RFC 3551 section 4.5.14), 172 bytes as on a real G.711 call.
const PayloadLen = 172

// Stream is one 5-tuple's ports (the addresses are the frame's).
type Stream struct {
	SrcPort, DstPort uint16
}

// Frame describes the frames of a run.
type Frame struct {
	SrcMAC, DstMAC net.HardwareAddr
	SrcIP, DstIP   netip.Addr
}

// genStream must be in sync with struct gen_stream in gen.c.
type genStream struct {
	Sport, Dport, Csum, Pad uint16
}

// Packet returns the full frame (ethernet, IPv4, UDP, RTP) of one stream with
// correct IPv4 and UDP checksums.
func Packet(f Frame, s Stream) []byte {
	b := make([]byte, HeaderLen+PayloadLen)
	copy(b[0:6], f.DstMAC)
	copy(b[6:12], f.SrcMAC)
	binary.BigEndian.PutUint16(b[12:14], 0x0800)
	ip := b[14:34]
	ip[0] = 0x45
	ip[1] = 0xb8 // DSCP EF, as media is usually marked
	binary.BigEndian.PutUint16(ip[2:4], uint16(20+8+PayloadLen))
	binary.BigEndian.PutUint16(ip[6:8], 0x4000) // DF
	ip[8] = 64
	ip[9] = unix.IPPROTO_UDP
	src, dst := f.SrcIP.As4(), f.DstIP.As4()
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	binary.BigEndian.PutUint16(ip[10:12], ^fold(sum(ip, 0)))
	udp := b[34:]
	binary.BigEndian.PutUint16(udp[0:2], s.SrcPort)
	binary.BigEndian.PutUint16(udp[2:4], s.DstPort)
	binary.BigEndian.PutUint16(udp[4:6], uint16(8+PayloadLen))
	rtp := udp[8:]
	rtp[0] = 0x80 // RTP version 2 (RFC 3550 section 5.1), PT 0 = PCMU
	binary.BigEndian.PutUint16(rtp[2:4], 1)
	binary.BigEndian.PutUint32(rtp[4:8], 160)
	// One SSRC for every stream: the live-frames generator rewrites only
	// the headers, so the payload (and its share of the checksum) is common.
	binary.BigEndian.PutUint32(rtp[8:12], 0x52460001)
	for i := 12; i < PayloadLen; i++ {
		rtp[i] = 0xff // PCMU silence
	}
	binary.BigEndian.PutUint16(udp[6:8], UDPChecksum(src, dst, udp))
	return b
}

// UDPChecksum computes the UDP checksum over the IPv4 pseudo-header and the
// datagram (RFC 768), whose checksum field must be zero. A computed zero is
// sent as 0xffff.
func UDPChecksum(src, dst [4]byte, udp []byte) uint16 {
	var pseudo [12]byte
	copy(pseudo[0:4], src[:])
	copy(pseudo[4:8], dst[:])
	pseudo[9] = unix.IPPROTO_UDP
	binary.BigEndian.PutUint16(pseudo[10:12], uint16(len(udp)))
	c := ^fold(sum(udp, sum(pseudo[:], 0)))
	if c == 0 {
		c = 0xffff
	}
	return c
}

func sum(b []byte, acc uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		acc += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		acc += uint32(b[len(b)-1]) << 8
	}
	return acc
}

func fold(acc uint32) uint16 {
	for acc > 0xffff {
		acc = acc&0xffff + acc>>16
	}
	return uint16(acc)
}

// Objects are the loaded programs and maps.
type Objects struct {
	objs genObjects
}

// Load loads the programs. Sinks count UDP to ports in [calleeLo, calleeHi) as
// callee packets and to [recLo, recHi) as recorder copies.
func Load(calleeLo, calleeHi, recLo, recHi uint16) (*Objects, error) {
	spec, err := loadGen()
	if err != nil {
		return nil, fmt.Errorf("load xdpgen spec: %w", err)
	}
	for name, v := range map[string]uint32{"callee_lo": uint32(calleeLo), "callee_hi": uint32(calleeHi),
		"rec_lo": uint32(recLo), "rec_hi": uint32(recHi)} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
	}
	o := &Objects{}
	if err := spec.LoadAndAssign(&o.objs, nil); err != nil {
		return nil, fmt.Errorf("load xdpgen objects: %w", err)
	}
	return o, nil
}

// Close releases the programs and maps.
func (o *Objects) Close() error { return o.objs.Close() }

// SetStreams installs the frame template and the streams the generator sends
// in round robin.
func (o *Objects) SetStreams(f Frame, streams []Stream) error {
	if len(streams) == 0 || len(streams) > 65536 {
		return fmt.Errorf("set streams: %d streams (1..65536): %w", len(streams), unix.EINVAL)
	}
	keys := make([]uint32, len(streams))
	vals := make([]genStream, len(streams))
	var tmpl [48]byte
	for i, s := range streams {
		p := Packet(f, s)
		if i == 0 {
			copy(tmpl[:], p[:HeaderLen])
		}
		keys[i] = uint32(i)
		// The map holds network byte order: the program copies the fields
		// into the header as they are.
		vals[i] = genStream{Sport: htons(s.SrcPort), Dport: htons(s.DstPort),
			Csum: htons(binary.BigEndian.Uint16(p[40:42]))}
	}
	if _, err := o.objs.Streams.BatchUpdate(keys, vals, nil); err != nil {
		for i := range keys {
			if err := o.objs.Streams.Put(keys[i], vals[i]); err != nil {
				return fmt.Errorf("put stream %d: %w", i, err)
			}
		}
	}
	if err := o.objs.HdrTmpl.Set(tmpl); err != nil {
		return fmt.Errorf("set header template: %w", err)
	}
	if err := o.objs.NextStream.Set(uint32(0)); err != nil {
		return fmt.Errorf("reset stream cursor: %w", err)
	}
	if err := o.objs.Nstreams.Set(uint32(len(streams))); err != nil {
		return fmt.Errorf("set stream count: %w", err)
	}
	return nil
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return *(*uint16)(unsafe.Pointer(&b[0]))
}

// xdpMd mirrors struct xdp_md for test runs.
type xdpMd struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// Send transmits n frames out of ifindex (in live-frames mode an XDP_TX
// becomes a redirect to the interface the frame "arrived" on). The ifindex is
// resolved in the calling thread's network namespace: call it from a thread
// locked into the generator's namespace.
func (o *Objects) Send(ifindex int, frame []byte, n uint32) error {
	if n == 0 {
		return nil
	}
	_, err := o.objs.XdpGen.Run(&ebpf.RunOptions{
		Data:      frame,
		Context:   xdpMd{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ifindex)},
		Repeat:    n,
		Flags:     unix.BPF_F_TEST_XDP_LIVE_FRAMES,
		BatchSize: 64,
	})
	if err != nil {
		return fmt.Errorf("xdp live-frames run: %w", err)
	}
	return nil
}

// PassNs returns the ns per run of the XDP pass program in a plain test run,
// the floor of any XDP test run on this machine.
func (o *Objects) PassNs(frame []byte, repeat uint32) (float64, error) {
	_, d, err := o.objs.XdpPass.Benchmark(frame, int(repeat), nil)
	if err != nil {
		return 0, fmt.Errorf("benchmark xdp pass: %w", err)
	}
	return float64(d.Nanoseconds()), nil
}

// TimeMapUpdates times n single updates of one entry of an array map from
// Go: the floor under any mute, which is one map update too.
func (o *Objects) TimeMapUpdates(n int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	v := genStream{Sport: 1}
	for i := 0; i < n; i++ {
		v.Dport = uint16(i)
		start := time.Now()
		if err := o.objs.Streams.Put(uint32(65535), v); err != nil {
			return nil, fmt.Errorf("update array map: %w", err)
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// The sink_counts slots (SINK_* in gen.c).
const (
	sinkCallee = iota
	sinkRec
	sinkRecNs
)

// Sink is the TCX sink attached to one interface.
type Sink struct {
	o   *Objects
	lnk link.Link
}

// AttachSink attaches the sink to ifindex's ingress, in the calling thread's
// namespace.
func (o *Objects) AttachSink(ifindex int) (*Sink, error) {
	l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: o.objs.TcSink, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		return nil, fmt.Errorf("attach tcx sink to ifindex %d: %w", ifindex, err)
	}
	return &Sink{o: o, lnk: l}, nil
}

// Counts returns the packets counted so far to the callees and to the recorder.
func (s *Sink) Counts() (callee, rec uint64, err error) {
	for i, dst := range []*uint64{sinkCallee: &callee, sinkRec: &rec} {
		var per []uint64
		if err := s.o.objs.SinkCounts.Lookup(uint32(i), &per); err != nil {
			return 0, 0, fmt.Errorf("read sink counter: %w", err)
		}
		for _, v := range per {
			*dst += v
		}
	}
	return callee, rec, nil
}

// LastCopy returns the CLOCK_MONOTONIC time at which the sink last saw a
// recorder copy (zero if never): the latest of the CPUs' stamps.
func (s *Sink) LastCopy() (time.Duration, error) {
	var per []uint64
	if err := s.o.objs.SinkCounts.Lookup(uint32(sinkRecNs), &per); err != nil {
		return 0, fmt.Errorf("read last copy time: %w", err)
	}
	var ns uint64
	for _, v := range per {
		ns = max(ns, v)
	}
	return time.Duration(ns), nil
}

// Monotonic returns the current CLOCK_MONOTONIC time, the clock of LastCopy.
func Monotonic() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}

// Close detaches the sink.
func (s *Sink) Close() error { return s.lnk.Close() }
