package siprec

import (
	"encoding/binary"
	"testing"
)

// BenchmarkInviteBody measures building one INVITE body: SDP, complete
// metadata and the multipart wrapper.
func BenchmarkInviteBody(b *testing.B) {
	s := goldenSession(b)
	s.started = s.c.cfg.Now()
	id := s.c.cfg.NewUUID()
	s.sdpID, s.sdpVer = binary.BigEndian.Uint64(id[:8])>>2, 1
	s.md = mdIDs{session: s.newID(), remote: s.newID(), local: s.newID()}
	streams := []*stream{{dir: 1, label: "1", id: s.newID(), offered: "sendonly"}, {dir: 2, label: "2", id: s.newID(), offered: "sendonly"}}
	streams[0].ep.ID, streams[0].ep.Local = 101, netipPort(30002)
	streams[1].ep.ID, streams[1].ep.Local = 102, netipPort(30004)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.body(s.offerLocked(streams), s.metadataLocked(streams, DataComplete, nil)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMatchAnswer measures parsing and checking an SRS answer.
func BenchmarkMatchAnswer(b *testing.B) {
	ans := []byte("v=0\r\no=srs 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 40000 RTP/AVP 0 101\r\na=label:1\r\na=recvonly\r\nm=audio 40002 RTP/AVP 0 101\r\na=label:2\r\na=recvonly\r\n")
	offer := []sdpStream{{Port: 30002, Dir: "sendonly"}, {Port: 30004, Dir: "sendonly"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := matchAnswer(offer, ans); err != nil {
			b.Fatal(err)
		}
	}
}
