package controlplane

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"

	"github.com/recfork/recfork/dataplane/srtp"
)

// Codec is one RTP payload format the platform can relay: the audio codecs it
// answers with (PCMU, PCMA) and RFC 4733 telephone-event.
type Codec struct {
	// PT is the payload type number, as offered by the peer for dynamic ones.
	PT uint8
	// Name is the encoding name as in a=rtpmap ("PCMU", "PCMA", "telephone-event").
	Name string
	// Rate is the clock rate; always 8000 for the formats recfork supports.
	Rate int
	// Fmtp is the a=fmtp value, if any (e.g. "0-16" for telephone-event).
	Fmtp string
}

// MediaDir is an SDP direction attribute (RFC 3264 §5.1, §6.1).
type MediaDir string

// The four SDP directions.
const (
	DirSendRecv MediaDir = "sendrecv"
	DirSendOnly MediaDir = "sendonly"
	DirRecvOnly MediaDir = "recvonly"
	DirInactive MediaDir = "inactive"
)

// answerDir is the direction an answer takes for an offered one (RFC 3264 §6.1).
func answerDir(offer MediaDir) MediaDir {
	switch offer {
	case DirSendOnly:
		return DirRecvOnly
	case DirRecvOnly:
		return DirSendOnly
	case DirInactive:
		return DirInactive
	}
	return DirSendRecv
}

// MediaOffer is the audio part of a peer's SDP as recfork uses it.
type MediaOffer struct {
	// Remote is where to send RTP; its address is unspecified (0.0.0.0) for
	// RFC 2543-style hold, and its port is zero when the stream is refused.
	Remote netip.AddrPort
	// Codecs are the offered formats recfork knows, in the peer's order of
	// preference; formats it does not know are left out.
	Codecs []Codec
	// Dir is the audio stream's direction.
	Dir MediaDir
	// Index is the position of the audio m-line among all m-lines.
	Index int
	// Lines is the number of m-lines in the whole description (an answer
	// carries as many, RFC 3264 §6).
	Lines int
	// Media holds each m-line's media type and protocol, to reject the others
	// with port 0 in the answer.
	Media []string
	// Proto is the audio m-line's transport: protoAVP, or protoSAVP for SRTP
	// keyed by SDES (RFC 4568).
	Proto string
	// Crypto are the audio m-line's a=crypto attributes recfork can use, in
	// the peer's order of preference (RFC 4568 §7.1.1); lines with an
	// unknown suite, a bad key or unsupported session parameters are left
	// out. Empty for RTP/AVP.
	Crypto []srtp.Crypto
}

// OnHold reports whether the peer asked to stop receiving (RFC 3264 §8.4, and
// the older c=0.0.0.0 form of RFC 2543).
func (m MediaOffer) OnHold() bool {
	return m.Dir == DirSendOnly || m.Dir == DirInactive || (m.Remote.Addr().IsValid() && m.Remote.Addr().IsUnspecified())
}

// The audio transports recfork speaks (RFC 3551, RFC 3711 §12).
const (
	protoAVP  = "RTP/AVP"
	protoSAVP = "RTP/SAVP"
)

// parseSDP reads the first RTP/AVP audio stream of an SDP body.
func parseSDP(body []byte) (MediaOffer, error) { return parseSDPSRTP(body, CallSRTPOff) }

// parseSDPSRTP reads the audio stream of an SDP body that srtpMode allows:
// RTP/AVP for CallSRTPOff, RTP/SAVP with a usable a=crypto for
// CallSRTPRequire, and with CallSRTPAccept the first RTP/SAVP one with a
// usable a=crypto, else the first RTP/AVP one. When none fits, the error
// says why: DTLS-SRTP offered (errDTLSSRTP), RTP/SAVP without a usable
// a=crypto (errNoCrypto), SRTP while off (errSRTPOff), plain RTP while
// required (errSRTPRequired); all of them wrap ErrNoCommonCodec.
func parseSDPSRTP(body []byte, srtpMode string) (MediaOffer, error) {
	var off MediaOffer
	if len(body) == 0 {
		return off, fmt.Errorf("parse sdp: empty body: %w", ErrBadSDP)
	}
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		return off, fmt.Errorf("parse sdp: %v: %w", err, ErrBadSDP)
	}
	off.Lines = len(sd.MediaDescriptions)
	sessionDir := dirOf(sd.Attributes)
	off.Index = -1
	plain, secure := -1, -1
	// sawBareSAVP: an RTP/SAVP audio line without a usable a=crypto.
	var sawDTLS, sawBareSAVP bool
	sessionFingerprint := hasAttr(sd.Attributes, "fingerprint")
	var keys []srtp.Crypto
	for i, md := range sd.MediaDescriptions {
		proto := strings.Join(md.MediaName.Protos, "/")
		off.Media = append(off.Media, md.MediaName.Media+" "+proto)
		if md.MediaName.Media != "audio" {
			continue
		}
		switch strings.ToUpper(proto) {
		case protoAVP:
			if plain < 0 {
				plain = i
			}
		case protoSAVP:
			k := usableCrypto(md)
			switch {
			case len(k) > 0:
				if secure < 0 {
					secure, keys = i, k
				}
			case sessionFingerprint || hasAttr(md.Attributes, "fingerprint"):
				// DTLS-SRTP under the older profile name (RFC 5763 §5).
				sawDTLS = true
			default:
				sawBareSAVP = true
			}
		case "UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF":
			sawDTLS = true
		}
	}
	pick, proto := -1, protoAVP
	switch srtpMode {
	case CallSRTPRequire:
		pick, proto = secure, protoSAVP
	case CallSRTPAccept:
		pick = plain
		if secure >= 0 {
			pick, proto = secure, protoSAVP
		}
	default:
		pick = plain
	}
	if pick < 0 {
		switch {
		case secure >= 0:
			// Only an SRTP offer recfork could take, and SRTP is off.
			return off, errSRTPOff
		case sawBareSAVP:
			return off, errNoCrypto
		case sawDTLS:
			return off, errDTLSSRTP
		case plain >= 0:
			return off, errSRTPRequired
		}
		return off, fmt.Errorf("parse sdp: no %s audio stream: %w", proto, ErrNoCommonCodec)
	}
	off.Proto = proto
	if proto == protoSAVP {
		off.Crypto = keys
	}
	for i, md := range sd.MediaDescriptions {
		if i != pick {
			continue
		}
		off.Index = i
		conn := md.ConnectionInformation
		if conn == nil {
			conn = sd.ConnectionInformation
		}
		if conn == nil || conn.Address == nil {
			return off, fmt.Errorf("parse sdp: audio stream has no connection address: %w", ErrBadSDP)
		}
		if conn.NetworkType != "IN" || (conn.AddressType != "IP4" && conn.AddressType != "IP6") {
			return off, fmt.Errorf("parse sdp: connection %s %s: %w", conn.NetworkType, conn.AddressType, ErrBadSDP)
		}
		addr, err := netip.ParseAddr(conn.Address.Address)
		if err != nil {
			return off, fmt.Errorf("parse sdp: connection address %q: %w", conn.Address.Address, ErrBadSDP)
		}
		port := md.MediaName.Port.Value
		if port < 0 || port > 65535 {
			return off, fmt.Errorf("parse sdp: port %d: %w", port, ErrBadSDP)
		}
		off.Remote = netip.AddrPortFrom(addr.Unmap(), uint16(port))
		off.Dir = dirOf(md.Attributes)
		if off.Dir == "" {
			off.Dir = sessionDir
		}
		if off.Dir == "" {
			off.Dir = DirSendRecv
		}
		off.Codecs = knownCodecs(md)
	}
	return off, nil
}

func hasAttr(attrs []sdp.Attribute, key string) bool {
	for _, a := range attrs {
		if strings.EqualFold(a.Key, key) {
			return true
		}
	}
	return false
}

// usableCrypto returns the a=crypto lines of an m-line recfork can key
// (srtp.ParseCrypto and Crypto.Supported), in order; the others are
// skipped, as RFC 4568 §7.1.1 lets an answerer do.
func usableCrypto(md *sdp.MediaDescription) []srtp.Crypto {
	var out []srtp.Crypto
	for _, a := range md.Attributes {
		if a.Key != "crypto" {
			continue
		}
		c, err := srtp.ParseCrypto(a.Value)
		if err != nil || !c.Supported() {
			continue
		}
		out = append(out, c)
	}
	return out
}

func dirOf(attrs []sdp.Attribute) MediaDir {
	for _, a := range attrs {
		switch MediaDir(a.Key) {
		case DirSendRecv, DirSendOnly, DirRecvOnly, DirInactive:
			return MediaDir(a.Key)
		}
	}
	return ""
}

// knownCodecs lists the formats of an m-line that recfork can relay, in order.
// Static payload types 0 and 8 need no rtpmap (RFC 3551 §6).
func knownCodecs(md *sdp.MediaDescription) []Codec {
	rtpmap := map[string]string{}
	fmtp := map[string]string{}
	for _, a := range md.Attributes {
		pt, rest, ok := strings.Cut(a.Value, " ")
		if !ok {
			continue
		}
		switch a.Key {
		case "rtpmap":
			rtpmap[pt] = strings.TrimSpace(rest)
		case "fmtp":
			fmtp[pt] = strings.TrimSpace(rest)
		}
	}
	var out []Codec
	for _, f := range md.MediaName.Formats {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 || n > 127 {
			continue
		}
		name, rate := "", 8000
		if m, ok := rtpmap[f]; ok {
			parts := strings.Split(m, "/")
			name = parts[0]
			if len(parts) > 1 {
				if r, err := strconv.Atoi(parts[1]); err == nil {
					rate = r
				}
			}
		} else {
			switch n {
			case 0:
				name = "PCMU"
			case 8:
				name = "PCMA"
			}
		}
		if rate != 8000 {
			continue
		}
		switch {
		case strings.EqualFold(name, "PCMU"):
			out = append(out, Codec{PT: uint8(n), Name: "PCMU", Rate: rate})
		case strings.EqualFold(name, "PCMA"):
			out = append(out, Codec{PT: uint8(n), Name: "PCMA", Rate: rate})
		case strings.EqualFold(name, "telephone-event"):
			out = append(out, Codec{PT: uint8(n), Name: "telephone-event", Rate: rate, Fmtp: fmtp[f]})
		}
	}
	return out
}

// negotiate picks the answer's formats from an offer: the peer's first audio
// codec recfork supports, plus telephone-event when offered. With no common
// audio codec it returns ErrNoCommonCodec (the caller answers 488, RFC 3261
// §13.3.1.3).
func negotiate(offered []Codec) ([]Codec, error) {
	var audio, dtmf *Codec
	for i := range offered {
		c := &offered[i]
		if c.Name == "telephone-event" {
			if dtmf == nil {
				dtmf = c
			}
			continue
		}
		if audio == nil {
			audio = c
		}
	}
	if audio == nil {
		return nil, fmt.Errorf("negotiate: %w", ErrNoCommonCodec)
	}
	out := []Codec{*audio}
	if dtmf != nil {
		out = append(out, *dtmf)
	}
	return out, nil
}

// defaultCodecs is what recfork offers when it places a call itself.
var defaultCodecs = []Codec{
	{PT: 0, Name: "PCMU", Rate: 8000},
	{PT: 8, Name: "PCMA", Rate: 8000},
	{PT: 101, Name: "telephone-event", Rate: 8000, Fmtp: "0-16"},
}

// localSDP describes the platform's side of a connection.
type localSDP struct {
	SessionID uint64
	Version   uint64
	Local     netip.AddrPort
	Codecs    []Codec
	Dir       MediaDir
	// Index and Lines place the audio m-line in an answer to an offer with
	// several m-lines; the others are refused with port 0 (RFC 3264 §6).
	Index, Lines int
	Media        []string
	// Proto is the audio m-line's transport; empty means RTP/AVP. Crypto
	// are its a=crypto values (RTP/SAVP): recfork's own keys, one per
	// offered suite in an offer, the one chosen in an answer.
	Proto  string
	Crypto []string
}

func (l localSDP) marshal() []byte {
	addrType := "IP4"
	if l.Local.Addr().Is6() {
		addrType = "IP6"
	}
	ip := l.Local.Addr().String()
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=recfork %d %d IN %s %s\r\ns=recfork\r\nc=IN %s %s\r\nt=0 0\r\n",
		l.SessionID, l.Version, addrType, ip, addrType, ip)
	lines := max(l.Lines, 1)
	for i := 0; i < lines; i++ {
		if i != l.Index {
			media := "audio RTP/AVP"
			if i < len(l.Media) {
				media = l.Media[i]
			}
			kind, proto, _ := strings.Cut(media, " ")
			fmt.Fprintf(&b, "m=%s 0 %s 0\r\n", kind, proto)
			continue
		}
		pts := make([]string, len(l.Codecs))
		for j, c := range l.Codecs {
			pts[j] = strconv.Itoa(int(c.PT))
		}
		proto := l.Proto
		if proto == "" {
			proto = protoAVP
		}
		fmt.Fprintf(&b, "m=audio %d %s %s\r\n", l.Local.Port(), proto, strings.Join(pts, " "))
		for _, c := range l.Codecs {
			fmt.Fprintf(&b, "a=rtpmap:%d %s/%d\r\n", c.PT, c.Name, c.Rate)
			if c.Fmtp != "" {
				fmt.Fprintf(&b, "a=fmtp:%d %s\r\n", c.PT, c.Fmtp)
			}
		}
		fmt.Fprintf(&b, "a=ptime:20\r\na=%s\r\n", l.Dir)
		for _, c := range l.Crypto {
			fmt.Fprintf(&b, "a=crypto:%s\r\n", c)
		}
	}
	return []byte(b.String())
}

// ParseAudioSDP reads the first RTP/AVP audio stream of an SDP body: the peer's
// media address, the formats recfork knows and the direction. Tools (the demo
// caller) and tests use it; malformed input gives an error wrapping ErrBadSDP.
func ParseAudioSDP(body []byte) (MediaOffer, error) { return parseSDP(body) }

// AudioSDP writes a one-stream audio SDP (sendrecv) at local with the given
// formats; empty codecs means PCMU, PCMA and telephone-event.
func AudioSDP(local netip.AddrPort, codecs []Codec) []byte {
	if len(codecs) == 0 {
		codecs = defaultCodecs
	}
	return localSDP{SessionID: randUint63(), Version: 1, Local: local, Codecs: codecs, Dir: DirSendRecv}.marshal()
}
