package srs

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/recfork/recfork/dataplane/srtp"
)

// StreamMode is what the SRS currently does with a stream.
type StreamMode string

// Stream modes.
const (
	// ModeRecvOnly: answered recvonly, media expected and recorded.
	ModeRecvOnly StreamMode = "recvonly"
	// ModeInactive: answered inactive (a paused stream, RFC 7866 §7.1.1);
	// no media expected, the gap becomes silence when media resumes.
	ModeInactive StreamMode = "inactive"
	// ModeRejected: answered with port 0 (offered port 0, not RTP/AVP audio,
	// or no ports left); nothing is recorded.
	ModeRejected StreamMode = "rejected"
	// ModeEnded: the stream's file is final (session ended or m-line gone).
	ModeEnded StreamMode = "ended"
)

// stream is one recorded m-line.
type stream struct {
	sess     *session
	position int
	label    string
	media    string
	path     string // WAV path, "" when never recorded
	port     int

	rtpConn, rtcpConn *net.UDPConn
	readers           sync.WaitGroup

	mu          sync.Mutex
	mode        StreamMode
	codecs      map[uint8]codec
	wav         *wavWriter
	trk         track
	undecoded   uint64
	malformed   uint64
	rtcpPackets uint64
	writeErrs   uint64
	pcm         []int16
	// srtp decrypts an SRTP stream (RTP/SAVP, srtp.go); nil for RTP.
	srtp         *srtp.Context
	srtpKey      []byte // the offered key srtp was made from
	answerCrypto string // our a=crypto answer, kept across re-INVITEs
	authFailures uint64
	plain        []byte
}

// StreamInfo is a snapshot of one stream.
type StreamInfo struct {
	Position int // m-line index in the offer, from 0
	Label    string
	Media    string
	Mode     StreamMode
	Port     int    // local RTP port; RTCP is Port+1; 0 when rejected
	Path     string // WAV file, "" when the stream was never recorded
	SSRC     uint32 // current SSRC, 0 before the first packet

	Packets     uint64 // RTP packets received, all included
	Bytes       uint64 // RTP payload bytes
	Lost        uint64 // RFC 3550 §A.3 expected minus received, per SSRC, summed
	Duplicates  uint64 // packets whose sequence number was already seen
	Late        uint64 // packets too far behind to place (dropped)
	Undecoded   uint64 // packets of payload types other than G.711 (counted, no audio)
	Malformed   uint64 // datagrams that are not RTP version 2
	SSRCChanges uint64
	Reanchors   uint64 // timestamp or sequence jumps re-anchored on arrival time
	RTCPPackets uint64
	// AuthFailures counts SRTP packets that failed authentication (wrong
	// keys, tampering): dropped, so they leave silence.
	AuthFailures uint64
	FirstArrival time.Time
	LastArrival  time.Time
	// StartOffset is where the first packet landed on the session timeline,
	// in samples at 8 kHz: the silence the file begins with.
	StartOffset int64
	// Samples is the file's audio length in samples at 8 kHz.
	Samples int64
}

func (st *stream) info() StreamInfo {
	st.mu.Lock()
	defer st.mu.Unlock()
	si := StreamInfo{
		Position:     st.position,
		Label:        st.label,
		Media:        st.media,
		Mode:         st.mode,
		Port:         st.port,
		Path:         st.path,
		SSRC:         st.trk.ssrc,
		Packets:      st.trk.packets,
		Bytes:        st.trk.bytes,
		Lost:         st.trk.lost(),
		Duplicates:   st.trk.duplicates,
		Late:         st.trk.late,
		Undecoded:    st.undecoded,
		Malformed:    st.malformed,
		SSRCChanges:  st.trk.ssrcChanges,
		Reanchors:    st.trk.reanchors,
		RTCPPackets:  st.rtcpPackets,
		AuthFailures: st.authFailures,
		FirstArrival: st.trk.firstArrival,
		LastArrival:  st.trk.lastArrival,
		StartOffset:  st.trk.startPos,
	}
	if st.wav != nil {
		si.Samples = st.wav.samples
	}
	return si
}

// start runs the RTP and RTCP readers.
func (st *stream) start() {
	st.readers.Add(2)
	go func() {
		defer st.readers.Done()
		st.readRTP()
	}()
	go func() {
		defer st.readers.Done()
		st.readRTCP()
	}()
}

// readBuf fits any audio RTP or RTCP datagram on a normal MTU with room to
// spare; a larger one arrives truncated and is counted as malformed or short.
const readBuf = 4096

func (st *stream) readRTP() {
	buf := make([]byte, readBuf)
	var pkt rtp.Packet
	for {
		n, err := st.rtpConn.Read(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				st.sess.srv.log.Warn("read rtp", "session_id", st.sess.id, "label", st.label, "error", err)
			}
			return
		}
		st.ingest(&pkt, buf[:n], time.Now())
		st.sess.srv.changed()
	}
}

func (st *stream) readRTCP() {
	buf := make([]byte, readBuf)
	for {
		_, err := st.rtcpConn.Read(buf)
		if err != nil {
			return
		}
		st.mu.Lock()
		st.rtcpPackets++
		st.mu.Unlock()
	}
}

// ingest records one datagram received at arrival. Bad input is counted,
// never fatal.
func (st *stream) ingest(pkt *rtp.Packet, b []byte, arrival time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.srtp != nil {
		var ok bool
		if b, ok = st.decrypt(b); !ok {
			return
		}
	}
	err := pkt.Unmarshal(b)
	if err != nil || pkt.Version != 2 {
		st.malformed++
		return
	}
	if st.wav == nil || st.wav.f == nil {
		return // ended
	}
	c, known := st.codecs[pkt.PayloadType]
	g711 := known && c.rate == 8000 && (c.name == "PCMU" || c.name == "PCMA")
	samples := 0
	if g711 {
		samples = len(pkt.Payload)
	}
	pl := st.trk.place(pkt.SSRC, pkt.SequenceNumber, pkt.Timestamp, len(pkt.Payload), samples, arrival, st.sess.wallPos)
	if !g711 {
		st.undecoded++
		return
	}
	if !pl.keep || samples == 0 {
		return
	}
	table := &ulawTable
	if c.name == "PCMA" {
		table = &alawTable
	}
	st.pcm = decodeG711(st.pcm[:0], table, pkt.Payload)
	if err := st.wav.writeAt(pl.pos, st.pcm); err != nil {
		st.writeErrs++
		if st.writeErrs == 1 {
			st.sess.srv.log.Error("write wav", "session_id", st.sess.id, "path", st.path, "error", err)
		}
	}
}

// stop closes the sockets, waits for the readers and finalises the file.
func (st *stream) stop() error {
	if st.rtpConn != nil {
		st.rtpConn.Close()
		st.rtcpConn.Close()
		st.readers.Wait()
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.mode != ModeRejected {
		st.mode = ModeEnded
	}
	if st.wav == nil {
		return nil
	}
	// The closed writer stays to report the final length in snapshots.
	return st.wav.close()
}
