package siprec

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// sdpStream is one m-line of a recording SDP (RFC 7866 §8.1.1): one per
// recorded direction, in a fixed order for the whole session.
type sdpStream struct {
	// Port is the RTP port; 0 marks a removed stream (RFC 3264 §8.2).
	Port int
	// Label is the a=label value (RFC 4574) tying the m-line to the metadata.
	Label string
	// Dir is the direction attribute: "sendonly", "inactive", "recvonly" or
	// "sendrecv".
	Dir string
	// Addr is the connection address (m-line c=, else session c=); in offers
	// we build it is the session's.
	Addr netip.Addr
	// Crypto, in offers we build, is the a=crypto value (RFC 4568) of an
	// SRTP stream, whose m-line is then RTP/SAVP; "" for RTP.
	Crypto string
}

// sdpOffer holds what stays the same across the session's offers.
type sdpOffer struct {
	SessionID uint64
	Version   uint64
	IP        netip.Addr
	Codecs    []Codec
	Streams   []sdpStream
}

func addrType(a netip.Addr) string {
	if a.Is4() || a.Is4In6() {
		return "IP4"
	}
	return "IP6"
}

// marshal writes the offer: one audio m-line per stream, the call's codecs on
// each, a=label, the direction; removed streams keep their place with port 0.
func (o sdpOffer) marshal() ([]byte, error) {
	if len(o.Codecs) == 0 {
		return nil, fmt.Errorf("build recording sdp: no codec: %w", ErrBadSDP)
	}
	ip := o.IP.Unmap()
	sd := &sdp.SessionDescription{
		Version: 0,
		Origin: sdp.Origin{Username: "recfork", SessionID: o.SessionID, SessionVersion: o.Version,
			NetworkType: "IN", AddressType: addrType(ip), UnicastAddress: ip.String()},
		SessionName: "recfork recording",
		ConnectionInformation: &sdp.ConnectionInformation{NetworkType: "IN", AddressType: addrType(ip),
			Address: &sdp.Address{Address: ip.String()}},
		TimeDescriptions: []sdp.TimeDescription{{Timing: sdp.Timing{}}},
	}
	formats := make([]string, 0, len(o.Codecs))
	for _, c := range o.Codecs {
		if c.PayloadType > 127 {
			return nil, fmt.Errorf("build recording sdp: payload type %d: %w", c.PayloadType, ErrBadSDP)
		}
		formats = append(formats, strconv.Itoa(int(c.PayloadType)))
	}
	for _, st := range o.Streams {
		protos := []string{"RTP", "AVP"}
		if st.Crypto != "" {
			protos = []string{"RTP", "SAVP"}
		}
		md := &sdp.MediaDescription{MediaName: sdp.MediaName{Media: "audio", Port: sdp.RangedPort{Value: st.Port},
			Protos: protos, Formats: formats}}
		for _, c := range o.Codecs {
			if c.Name == "" || c.ClockRate == 0 {
				continue // a static payload type needs no rtpmap
			}
			v := fmt.Sprintf("%d %s/%d", c.PayloadType, c.Name, c.ClockRate)
			if c.Channels > 1 {
				v += "/" + strconv.Itoa(int(c.Channels))
			}
			md.Attributes = append(md.Attributes, sdp.Attribute{Key: "rtpmap", Value: v})
			if c.Fmtp != "" {
				md.Attributes = append(md.Attributes, sdp.Attribute{Key: "fmtp", Value: fmt.Sprintf("%d %s", c.PayloadType, c.Fmtp)})
			}
		}
		if st.Crypto != "" && st.Port != 0 {
			md.Attributes = append(md.Attributes, sdp.Attribute{Key: "crypto", Value: st.Crypto})
		}
		md.Attributes = append(md.Attributes, sdp.Attribute{Key: "label", Value: st.Label})
		dir := st.Dir
		if st.Port == 0 || dir == "" {
			dir = "inactive"
		}
		md.Attributes = append(md.Attributes, sdp.Attribute{Key: dir})
		sd.MediaDescriptions = append(sd.MediaDescriptions, md)
	}
	b, err := sd.Marshal()
	if err != nil {
		return nil, fmt.Errorf("marshal recording sdp: %w", err)
	}
	return b, nil
}

// normalizeSDP gives pion/sdp the shape it insists on: every line, the
// last one included, ends in CRLF and there are no blank lines. RFC 7866's
// own examples end the SDP part at the multipart delimiter, whose leading
// CRLF belongs to the delimiter (RFC 2046 §5.1.1), so the last SDP line has
// no line end; some peers send LF-only lines (RFC 4566 §5 allows them).
func normalizeSDP(b []byte) []byte {
	out := make([]byte, 0, len(b)+2)
	for line := range bytes.Lines(b) {
		line = bytes.TrimRight(line, "\r\n")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		out = append(out, line...)
		out = append(out, '\r', '\n')
	}
	return out
}

// parseStreams reads the m-lines of an SDP body (an SRS's answer or offer) in
// order. Audio m-lines only make sense here; any other media is an error
// because answers are matched to offers by position (RFC 3264 §6).
func parseStreams(body []byte) (uint64, []sdpStream, error) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(normalizeSDP(body)); err != nil {
		return 0, nil, newFault(400, "Malformed SDP", ErrBadSDP, "parse sdp: %v", err)
	}
	var sessAddr netip.Addr
	if ci := sd.ConnectionInformation; ci != nil && ci.Address != nil {
		a, err := parseConnAddr(ci.Address.Address)
		if err != nil {
			return 0, nil, err
		}
		sessAddr = a
	}
	sessDir := ""
	for _, a := range sd.Attributes {
		if isDir(a.Key) {
			sessDir = a.Key
		}
	}
	out := make([]sdpStream, 0, len(sd.MediaDescriptions))
	for i, md := range sd.MediaDescriptions {
		if md == nil {
			return 0, nil, fmt.Errorf("parse sdp: m-line %d empty: %w", i+1, ErrBadSDP)
		}
		st := sdpStream{Port: md.MediaName.Port.Value, Addr: sessAddr, Dir: sessDir}
		if st.Port < 0 || st.Port > 65535 {
			return 0, nil, fmt.Errorf("parse sdp: m-line %d port %d: %w", i+1, st.Port, ErrBadSDP)
		}
		if md.MediaName.Media != "audio" && st.Port != 0 {
			return 0, nil, fmt.Errorf("parse sdp: m-line %d is %q, not audio: %w", i+1, md.MediaName.Media, ErrBadSDP)
		}
		if ci := md.ConnectionInformation; ci != nil && ci.Address != nil {
			a, err := parseConnAddr(ci.Address.Address)
			if err != nil {
				return 0, nil, err
			}
			st.Addr = a
		}
		for _, a := range md.Attributes {
			switch {
			case isDir(a.Key):
				st.Dir = a.Key
			case a.Key == "label":
				st.Label = a.Value
			}
		}
		if st.Dir == "" {
			st.Dir = "sendrecv" // RFC 4566 §6: the default
		}
		if st.Port != 0 && !st.Addr.IsValid() {
			return 0, nil, fmt.Errorf("parse sdp: m-line %d has no connection address: %w", i+1, ErrBadSDP)
		}
		out = append(out, st)
	}
	return sd.Origin.SessionVersion, out, nil
}

func isDir(k string) bool {
	switch k {
	case "sendonly", "recvonly", "sendrecv", "inactive":
		return true
	}
	return false
}

// parseConnAddr accepts a unicast IP literal; host names are refused because
// the data plane needs an address, and resolving here would block.
func parseConnAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, newFault(400, "Malformed SDP", ErrBadSDP, "parse sdp: connection address %q", s)
	}
	return a.Unmap(), nil
}

// matchAnswer checks an SRS answer against our offer, position by position
// (never by label: some SRSs rewrite labels). It returns the answer's
// streams, one per offered m-line.
func matchAnswer(offer []sdpStream, body []byte) ([]sdpStream, error) {
	_, ans, err := parseStreams(body)
	if err != nil {
		return nil, err
	}
	if len(ans) != len(offer) {
		return nil, fmt.Errorf("answer has %d m-lines for %d offered: %w", len(ans), len(offer), ErrBadSDP)
	}
	for i := range ans {
		if offer[i].Port == 0 {
			continue // removed on our side; whatever the answer says
		}
		if ans[i].Port == 0 {
			continue // the SRS refuses this stream (RFC 3264 §6)
		}
		switch ans[i].Dir {
		case "recvonly", "inactive":
		case "sendrecv":
			// Tolerated: the SRS will never get media from us to relay back.
		default:
			return nil, fmt.Errorf("answer m-line %d is %s for an offered %s: %w", i+1, ans[i].Dir, offer[i].Dir, ErrBadSDP)
		}
	}
	return ans, nil
}

// CodecsFromSDP reads the payload formats of the first audio m-line of a
// negotiated SDP (the call leg's answer), in m-line order, with their rtpmap
// and fmtp, ready for Leg.Codecs.
func CodecsFromSDP(body []byte) ([]Codec, error) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(normalizeSDP(body)); err != nil {
		return nil, fmt.Errorf("parse call sdp: %v: %w", err, ErrBadSDP)
	}
	for _, md := range sd.MediaDescriptions {
		if md == nil || md.MediaName.Media != "audio" || md.MediaName.Port.Value == 0 {
			continue
		}
		var out []Codec
		byPT := map[uint8]int{}
		for _, f := range md.MediaName.Formats {
			pt, err := strconv.ParseUint(f, 10, 8)
			if err != nil || pt > 127 {
				return nil, fmt.Errorf("parse call sdp: payload type %q: %w", f, ErrBadSDP)
			}
			c := Codec{PayloadType: uint8(pt)}
			if s, ok := staticPT[c.PayloadType]; ok {
				c.Name, c.ClockRate = s.name, s.rate
			}
			byPT[c.PayloadType] = len(out)
			out = append(out, c)
		}
		for _, a := range md.Attributes {
			if a.Key != "rtpmap" && a.Key != "fmtp" {
				continue
			}
			ptS, rest, ok := strings.Cut(a.Value, " ")
			if !ok {
				return nil, fmt.Errorf("parse call sdp: a=%s:%s: %w", a.Key, a.Value, ErrBadSDP)
			}
			pt, err := strconv.ParseUint(ptS, 10, 8)
			if err != nil {
				return nil, fmt.Errorf("parse call sdp: a=%s:%s: %w", a.Key, a.Value, ErrBadSDP)
			}
			i, ok := byPT[uint8(pt)]
			if !ok {
				continue
			}
			if a.Key == "fmtp" {
				out[i].Fmtp = strings.TrimSpace(rest)
				continue
			}
			parts := strings.Split(strings.TrimSpace(rest), "/")
			if len(parts) < 2 || parts[0] == "" {
				return nil, fmt.Errorf("parse call sdp: a=rtpmap:%s: %w", a.Value, ErrBadSDP)
			}
			rate, err := strconv.ParseUint(parts[1], 10, 32)
			if err != nil || rate == 0 {
				return nil, fmt.Errorf("parse call sdp: a=rtpmap:%s: %w", a.Value, ErrBadSDP)
			}
			out[i].Name, out[i].ClockRate = parts[0], uint32(rate)
			if len(parts) > 2 {
				ch, err := strconv.ParseUint(parts[2], 10, 16)
				if err != nil {
					return nil, fmt.Errorf("parse call sdp: a=rtpmap:%s: %w", a.Value, ErrBadSDP)
				}
				out[i].Channels = uint16(ch)
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("parse call sdp: audio m-line without formats: %w", ErrBadSDP)
		}
		return out, nil
	}
	return nil, fmt.Errorf("parse call sdp: no active audio m-line: %w", ErrBadSDP)
}

// staticPT are the audio payload types of RFC 3551 §6 the SRS can decode
// without an rtpmap.
var staticPT = map[uint8]struct {
	name string
	rate uint32
}{
	0: {"PCMU", 8000}, 3: {"GSM", 8000}, 4: {"G723", 8000}, 8: {"PCMA", 8000},
	9: {"G722", 8000}, 18: {"G729", 8000},
}
