package srs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// SessionState is the life-cycle state of a recording session.
type SessionState string

// Session states.
const (
	StateActive SessionState = "active"
	StateEnded  SessionState = "ended"
)

// Violation is one breach of the SIPREC rules seen from the SRC, recorded in
// strict mode for tests to read.
type Violation struct {
	Time   time.Time
	Rule   string // a stable identifier, one of the Rule* constants
	Detail string
}

// Rules the strict mode checks (RFC 7866, RFC 3264, RFC 7865).
const (
	RuleNoSrcFeature        = "contact-without-sip-src"      // RFC 7866 §6.1.1
	RuleSendRecvOffered     = "sendrecv-offered"             // RFC 7866 §7.1.1: SRC offers sendonly/inactive
	RuleRecvOnlyOffered     = "recvonly-offered"             // the SRC sends, it never only receives
	RuleMLinesShrunk        = "mline-count-shrunk"           // RFC 3264 §8: m-lines are never removed
	RuleLabelChanged        = "label-changed"                // RFC 4574 label bound to a position
	RuleVersionNotBumped    = "sdp-version-not-bumped"       // RFC 3264 §8: changed offer, same o= version
	RuleVersionDecreased    = "sdp-version-decreased"        // RFC 3264 §8
	RuleFirstNotComplete    = "first-metadata-not-complete"  // RFC 7866 §6.1.1, RFC 7865 datamode
	RuleMetadataNamespace   = "metadata-namespace"           // RFC 7865 namespace
	RuleMetadataDisposition = "metadata-without-disposition" // RFC 7866 §9
	RuleNoAck               = "no-ack-for-2xx"               // RFC 3261 §13.3.1.4
)

// SessionInfo is a snapshot of one recording session.
type SessionInfo struct {
	ID        string // also the directory name
	CallID    string
	State     SessionState
	Transport string // UDP or TCP
	Remote    string // source address of the INVITE
	Dir       string // directory holding the WAV files and metadata.xml
	Labels    []string
	// Metadata is the latest RFC 7865 document as received.
	Metadata        []byte `json:"-"`
	MetadataUpdates int    // metadata documents received, the first included
	Streams         []StreamInfo
	Violations      []Violation
	Started         time.Time
	Ended           time.Time
	EndReason       string
}

// End reasons.
const (
	EndByeFromSRC = "bye from src"
	EndByeFromSRS = "bye from srs"
	EndNoAck      = "no ack"
	EndShutdown   = "server shutdown"
)

type ackWait struct {
	cseq uint32
	ch   chan struct{}
}

// session is one SIPREC recording session (one SIP dialog).
type session struct {
	srv    *Server
	id     string
	callID string
	dir    string

	startMu    sync.Mutex
	mediaStart time.Time // arrival of the session's first RTP packet

	mu            sync.Mutex
	state         SessionState
	key           string
	transport     string
	remote        string
	localTag      string
	remoteTag     string
	remoteTarget  sip.Uri
	routes        []string
	inviteFrom    sip.FromHeader
	inviteTo      sip.ToHeader
	localCSeq     uint32
	remoteCSeq    uint32
	streams       []*stream
	names         map[string]bool
	offerVersion  uint64
	offerCanon    []byte
	sdpSessID     uint64
	answerVersion uint64
	answerCanon   []byte
	metadata      []byte
	metaUpdates   int
	violations    []Violation
	pendingAck    *ackWait
	inviteBusy    bool
	started       time.Time
	ended         time.Time
	endReason     string
	done          chan struct{}
}

// wallPos maps an arrival time to the session timeline: samples at 8 kHz
// since the session's first RTP packet. The first caller sets the origin.
func (s *session) wallPos(t time.Time) int64 {
	s.startMu.Lock()
	if s.mediaStart.IsZero() {
		s.mediaStart = t
	}
	start := s.mediaStart
	s.startMu.Unlock()
	return int64(t.Sub(start)) * wavRate / int64(time.Second)
}

// violate records a rule breach (strict mode) and logs it. Callers hold s.mu.
func (s *session) violate(rule, detail string) {
	if s.srv.cfg.Lenient {
		return
	}
	s.violations = append(s.violations, Violation{Time: time.Now(), Rule: rule, Detail: detail})
	s.srv.log.Warn("siprec violation", "session_id", s.id, "call_id", s.callID, "rule", rule, "detail", detail)
}

func (s *session) info() SessionInfo {
	s.mu.Lock()
	si := SessionInfo{
		ID:              s.id,
		CallID:          s.callID,
		State:           s.state,
		Transport:       s.transport,
		Remote:          s.remote,
		Dir:             s.dir,
		Metadata:        bytes.Clone(s.metadata),
		MetadataUpdates: s.metaUpdates,
		Violations:      append([]Violation(nil), s.violations...),
		Started:         s.started,
		Ended:           s.ended,
		EndReason:       s.endReason,
	}
	streams := append([]*stream(nil), s.streams...)
	s.mu.Unlock()
	for _, st := range streams {
		si.Streams = append(si.Streams, st.info())
		si.Labels = append(si.Labels, st.label)
	}
	return si
}

// setMetadata stores a metadata document and writes it beside the WAV
// files, replacing the previous one. Callers hold s.mu.
func (s *session) setMetadata(b []byte) error {
	m, err := inspectMetadata(b)
	if err != nil {
		return err
	}
	if m.root.Local != "recording" || m.root.Space != recordingNS {
		s.violate(RuleMetadataNamespace, fmt.Sprintf("root element {%s}%s", m.root.Space, m.root.Local))
	}
	if s.metaUpdates == 0 && m.dataMode != "complete" {
		s.violate(RuleFirstNotComplete, fmt.Sprintf("datamode %q", m.dataMode))
	}
	s.metadata = bytes.Clone(b)
	s.metaUpdates++
	if err := s.srv.store.writeFile(filepath.Join(s.dir, "metadata.xml"), b); err != nil {
		return fmt.Errorf("write metadata: %w", err)
	}
	return nil
}

// applyOffer reconciles the streams with an offer and returns the answer.
// Callers hold s.mu. initial is true for the dialog-creating INVITE.
func (s *session) applyOffer(o *offer, initial bool) ([]byte, error) {
	if initial {
		ok := false
		for i := range o.mlines {
			ok = ok || o.mlines[i].recordable()
		}
		if !ok {
			return nil, bodyErr(488, "Not Acceptable Here", "no RTP/AVP audio m-line (or RTP/SAVP with a supported a=crypto) with a port")
		}
	} else {
		if len(o.mlines) < len(s.streams) {
			s.violate(RuleMLinesShrunk, fmt.Sprintf("%d m-lines after %d", len(o.mlines), len(s.streams)))
		}
		switch {
		case o.version < s.offerVersion:
			s.violate(RuleVersionDecreased, fmt.Sprintf("o= version %d after %d", o.version, s.offerVersion))
		case o.version == s.offerVersion && !bytes.Equal(o.canon, s.offerCanon):
			s.violate(RuleVersionNotBumped, fmt.Sprintf("o= version %d kept on a changed offer", o.version))
		}
	}
	s.offerVersion, s.offerCanon = o.version, o.canon

	lines := make([]answerLine, len(o.mlines))
	for i, m := range o.mlines {
		switch m.dir {
		case dirSendRecv:
			s.violate(RuleSendRecvOffered, fmt.Sprintf("m-line %d", i))
		case dirRecvOnly:
			s.violate(RuleRecvOnlyOffered, fmt.Sprintf("m-line %d", i))
		}
		want := ModeRejected
		if m.recordable() {
			want = ModeRecvOnly
			if m.dir == dirInactive || m.dir == dirRecvOnly {
				want = ModeInactive
			}
		}
		var st *stream
		if i < len(s.streams) {
			st = s.streams[i]
			if st.label != m.label {
				s.violate(RuleLabelChanged, fmt.Sprintf("m-line %d label %q became %q", i, st.label, m.label))
			}
		}
		st = s.reconcile(i, st, m, want)
		lines[i] = answerLine{m: m, dir: string(ModeRecvOnly)}
		st.mu.Lock()
		mode := st.mode
		lines[i].crypto = st.answerCrypto
		st.mu.Unlock()
		switch mode {
		case ModeRecvOnly:
			lines[i].port = st.port
		case ModeInactive:
			lines[i].port = st.port
			lines[i].dir = dirInactive
		}
	}
	// m-lines the offer dropped: their streams end (RFC 3264 §8 forbids
	// dropping them, which was recorded above).
	for i := len(o.mlines); i < len(s.streams); i++ {
		s.stopStream(s.streams[i])
	}

	if initial && !slices.ContainsFunc(lines, func(l answerLine) bool { return l.port != 0 }) {
		// Recordable m-lines were offered but none got ports.
		return nil, bodyErr(503, "Service Unavailable", "no free rtp ports")
	}

	answer := buildAnswer(s.sdpSessID, s.answerVersion, s.srv.mediaIP, lines)
	if canon := canonicalSDP(answer); !bytes.Equal(canon, s.answerCanon) {
		if s.answerCanon != nil {
			s.answerVersion++ // RFC 3264 §8: a changed answer bumps the version
			answer = buildAnswer(s.sdpSessID, s.answerVersion, s.srv.mediaIP, lines)
		}
		s.answerCanon = canon
	}
	return answer, nil
}

// reconcile brings the stream at position i to mode want and returns the
// stream now at that position. Callers hold s.mu.
func (s *session) reconcile(i int, st *stream, m mline, want StreamMode) *stream {
	if st != nil {
		st.mu.Lock()
		cur := st.mode
		st.mu.Unlock()
		switch {
		case want == ModeRejected:
			if cur == ModeRecvOnly || cur == ModeInactive {
				s.stopStream(st)
			}
			return st
		case cur == ModeRecvOnly || cur == ModeInactive:
			st.mu.Lock()
			st.mode = want
			st.codecs = m.rtpmap
			err := st.keyStream(m)
			st.mu.Unlock()
			if err != nil {
				s.srv.log.Error("srtp key", "session_id", s.id, "position", i, "error", err)
			}
			return st
		}
		// A refused or ended position offered again: a new stream with its
		// own file (RFC 3264 §8.3 reuse of a port-0 m-line).
	}
	nst := &stream{sess: s, position: i, label: m.label, media: m.media, mode: ModeRejected, codecs: m.rtpmap}
	if err := nst.keyStream(m); err != nil {
		s.srv.log.Error("srtp key", "session_id", s.id, "position", i, "error", err)
		want = ModeRejected
	}
	if want != ModeRejected {
		if err := s.activate(nst, want); err != nil {
			s.srv.log.Error("start stream", "session_id", s.id, "position", i, "label", m.label, "error", err)
		}
	}
	if i < len(s.streams) {
		s.streams[i] = nst
	} else {
		s.streams = append(s.streams, nst)
	}
	return nst
}

// activate opens ports and the WAV file of a new stream.
func (s *session) activate(st *stream, mode StreamMode) error {
	a, b, err := s.srv.ports.open()
	if err != nil {
		return err
	}
	name := s.fileName(st.position)
	path := filepath.Join(s.dir, name+".wav")
	w, err := s.srv.store.createWAV(path)
	if err != nil {
		a.Close()
		b.Close()
		return err
	}
	st.rtpConn, st.rtcpConn = a, b
	st.port = a.LocalAddr().(*net.UDPAddr).Port
	st.path = path
	st.wav = w
	st.mode = mode
	st.start()
	return nil
}

// fileName picks a unique base name for a stream's file from its position,
// "stream<position>", with a numeric suffix when a re-INVITE replaced the
// stream at that position. The label is the caller's and stays out of the
// path; SessionInfo.Streams maps labels to files.
func (s *session) fileName(position int) string {
	base := "stream" + strconv.Itoa(position)
	name := base
	for n := 2; s.names[name]; n++ {
		name = base + "-" + strconv.Itoa(n)
	}
	s.names[name] = true
	return name
}

func (s *session) stopStream(st *stream) {
	if err := st.stop(); err != nil {
		s.srv.log.Error("finish wav", "session_id", s.id, "path", st.path, "error", err)
	}
}

// end finalises the session once; later calls do nothing.
func (s *session) end(reason string) {
	s.mu.Lock()
	if s.state == StateEnded {
		s.mu.Unlock()
		return
	}
	s.state = StateEnded
	s.ended = time.Now()
	s.endReason = reason
	streams := append([]*stream(nil), s.streams...)
	if s.pendingAck != nil {
		close(s.pendingAck.ch)
		s.pendingAck = nil
	}
	close(s.done)
	s.mu.Unlock()
	for _, st := range streams {
		s.stopStream(st)
	}
	info := s.info()
	if b, err := json.MarshalIndent(info, "", "  "); err == nil {
		if err := s.srv.store.writeFile(filepath.Join(s.dir, "session.json"), append(b, '\n')); err != nil {
			s.srv.log.Error("write session summary", "session_id", s.id, "error", err)
		}
	}
	s.srv.sessionEnded(s, info)
}

// discard removes a session that was never answered: its streams, files
// and directory.
func (s *session) discard() {
	s.mu.Lock()
	streams := append([]*stream(nil), s.streams...)
	s.state = StateEnded
	s.mu.Unlock()
	for _, st := range streams {
		_ = st.stop()
	}
	if err := os.RemoveAll(s.dir); err != nil {
		s.srv.log.Warn("remove session dir", "dir", s.dir, "error", err)
	}
}
