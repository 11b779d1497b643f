package srs

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/recfork/recfork/dataplane/srtp"
)

// Directions of an m-line (RFC 3264 §5.1, RFC 4566 §6).
const (
	dirSendRecv = "sendrecv"
	dirSendOnly = "sendonly"
	dirRecvOnly = "recvonly"
	dirInactive = "inactive"
)

// codec is a payload type's encoding from a=rtpmap (or the static table).
type codec struct {
	name string // upper case, e.g. PCMU
	rate int
}

// mline is one offered media description, reduced to what the SRS uses.
type mline struct {
	media   string
	port    int
	proto   string
	formats []string
	dir     string
	label   string
	rtpmap  map[uint8]codec
	attrs   []string // a=rtpmap and a=fmtp lines to echo for kept formats
	// crypto is the first a=crypto (RFC 4568) of an RTP/SAVP m-line whose
	// suite the SRS supports; nil otherwise.
	crypto *srtp.Crypto
}

// offer is a parsed SDP offer.
type offer struct {
	version uint64 // o= sess-version
	// canon is the SDP with the o= line removed, to tell a changed offer
	// from a repeated one (RFC 3264 §8).
	canon  []byte
	mlines []mline
}

// parseOffer parses an SDP offer (RFC 4566).
func parseOffer(b []byte) (*offer, error) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(normalizeSDP(b)); err != nil {
		return nil, fmt.Errorf("parse sdp: %w", err)
	}
	o := &offer{version: sd.Origin.SessionVersion, canon: canonicalSDP(b)}
	sessDir := directionOf(sd.Attributes, dirSendRecv)
	for _, md := range sd.MediaDescriptions {
		m := mline{
			media:   md.MediaName.Media,
			port:    md.MediaName.Port.Value,
			proto:   strings.Join(md.MediaName.Protos, "/"),
			formats: md.MediaName.Formats,
			dir:     directionOf(md.Attributes, sessDir),
			rtpmap:  map[uint8]codec{ptPCMU: {"PCMU", 8000}, ptPCMA: {"PCMA", 8000}},
		}
		if m.port < 0 || m.port > 65535 {
			return nil, fmt.Errorf("parse sdp: m-line port %d out of range", m.port)
		}
		for _, a := range md.Attributes {
			switch a.Key {
			case "label":
				m.label = a.Value
			case "rtpmap":
				m.attrs = append(m.attrs, "a=rtpmap:"+a.Value)
				pt, enc, ok := strings.Cut(a.Value, " ")
				n, err := strconv.ParseUint(pt, 10, 7)
				if !ok || err != nil {
					continue
				}
				name, rest, _ := strings.Cut(enc, "/")
				rateStr, _, _ := strings.Cut(rest, "/")
				rate, _ := strconv.Atoi(rateStr)
				m.rtpmap[uint8(n)] = codec{strings.ToUpper(name), rate}
			case "fmtp":
				m.attrs = append(m.attrs, "a=fmtp:"+a.Value)
			case "crypto":
				// Liberal: unusable lines (other suites, MKIs) are skipped;
				// the m-line is refused only if none is usable.
				if c, err := srtp.ParseCrypto(a.Value); err == nil && m.crypto == nil {
					m.crypto = &c
				}
			}
		}
		o.mlines = append(o.mlines, m)
	}
	return o, nil
}

func directionOf(attrs []sdp.Attribute, def string) string {
	for _, a := range attrs {
		switch a.Key {
		case dirSendRecv, dirSendOnly, dirRecvOnly, dirInactive:
			return a.Key
		}
	}
	return def
}

// canonicalSDP drops the o= line and normalises line ends.
func canonicalSDP(b []byte) []byte {
	var out bytes.Buffer
	for line := range strings.Lines(string(b)) {
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "o=") || line == "" {
			continue
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	return out.Bytes()
}

// recordable tells whether the SRS can receive this m-line: RTP audio, or
// SRTP audio (RTP/SAVP) keyed by an a=crypto it supports (RFC 4568).
func (m *mline) recordable() bool {
	if m.port == 0 || m.media != "audio" {
		return false
	}
	return m.proto == "RTP/AVP" || (m.proto == "RTP/SAVP" && m.crypto != nil)
}

// answerLine is the SRS's answer for one m-line position.
type answerLine struct {
	m    mline
	port int    // 0 rejects the stream (RFC 3264 §6)
	dir  string // recvonly or inactive
	// crypto is the a=crypto value answering an SRTP m-line (RFC 4568
	// §7.1.2: same tag and suite, the SRS's own key); "" for RTP.
	crypto string
}

// buildAnswer writes the SDP answer; m-lines are answered by position
// (RFC 3264 §6), each keeping its offered label (RFC 4574).
func buildAnswer(sessID, version uint64, ip netip.Addr, lines []answerLine) []byte {
	addrType := "IP4"
	if ip.Is6() && !ip.Is4In6() {
		addrType = "IP6"
	}
	host := ip.Unmap().String()
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=recfork-srs %d %d IN %s %s\r\ns=recfork SRS\r\nc=IN %s %s\r\nt=0 0\r\n",
		sessID, version, addrType, host, addrType, host)
	for _, l := range lines {
		formats := l.m.formats
		if len(formats) == 0 {
			formats = []string{"0"} // an m-line needs one format even when refused
		}
		proto := l.m.proto
		if proto == "" {
			proto = "RTP/AVP"
		}
		media := l.m.media
		if media == "" {
			media = "audio"
		}
		fmt.Fprintf(&b, "m=%s %d %s %s\r\n", media, l.port, proto, strings.Join(formats, " "))
		if l.port != 0 {
			for _, a := range l.m.attrs {
				b.WriteString(a)
				b.WriteString("\r\n")
			}
		}
		if l.m.label != "" {
			fmt.Fprintf(&b, "a=label:%s\r\n", l.m.label)
		}
		if l.port != 0 && l.crypto != "" {
			fmt.Fprintf(&b, "a=crypto:%s\r\n", l.crypto)
		}
		if l.port != 0 {
			fmt.Fprintf(&b, "a=%s\r\n", l.dir)
		}
	}
	return []byte(b.String())
}
