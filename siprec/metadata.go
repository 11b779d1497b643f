package siprec

import (
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// MetadataNS is the RFC 7865 namespace of <recording>.
const MetadataNS = "urn:ietf:params:xml:ns:recording:1"

// Metadata media types: RFC 9806 fixed the name; RFC 7866's legacy name is
// still sent by some peers and accepted on input.
const (
	MetadataType       = "application/rs-metadata+xml"
	MetadataTypeLegacy = "application/rs-metadata"
	MetadataRequest    = "application/rs-metadata-request"
)

// Data modes of a metadata document (RFC 7865 §6.1).
const (
	DataComplete = "complete"
	DataPartial  = "partial"
)

// Metadata is an RFC 7865 recording metadata document: the parts recfork
// writes and reads. Ids are base64 strings of 128-bit UUIDs (RFC 7865 §6.9);
// zero times are not written.
type Metadata struct {
	DataMode     string
	Sessions     []MDSession
	Participants []MDParticipant
	Streams      []MDStream
	// SessionRecordingAssocs tie communication sessions to the recording.
	SessionRecordingAssocs []MDAssoc
	// ParticipantSessionAssocs tie participants to sessions.
	ParticipantSessionAssocs []MDAssoc
	// ParticipantStreamAssocs list the streams each participant sends and
	// receives.
	ParticipantStreamAssocs []MDStreamAssoc
}

// MDSession is a <session>: the recorded communication session.
type MDSession struct {
	ID            string
	SIPSessionIDs []string
	StartTime     time.Time
	StopTime      time.Time
}

// MDParticipant is a <participant> with its <nameID> elements.
type MDParticipant struct {
	ID    string
	Names []MDNameID
}

// MDNameID is a <nameID aor=...> with an optional <name>.
type MDNameID struct {
	AOR  string
	Name string
}

// MDStream is a <stream>: one media stream, tied to the SDP by its label.
type MDStream struct {
	ID        string
	SessionID string
	Label     string
}

// MDAssoc is a sessionrecordingassoc (ParticipantID empty) or a
// participantsessionassoc.
type MDAssoc struct {
	SessionID        string
	ParticipantID    string
	AssociateTime    time.Time
	DisassociateTime time.Time
}

// MDStreamAssoc is a <participantstreamassoc>.
type MDStreamAssoc struct {
	ParticipantID string
	Send, Recv    []string
}

// EncodeID writes a 128-bit UUID as a metadata id (RFC 7865 §6.9: base64).
func EncodeID(u [16]byte) string { return base64.StdEncoding.EncodeToString(u[:]) }

// xsDateTime writes an xs:dateTime in UTC.
func xsDateTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func parseDateTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("xs:dateTime %q: %w", s, ErrBadMetadata)
}

// Marshal writes the document with the children of <recording> in the order
// the RFC 7865 §7 schema's sequence requires.
func (m *Metadata) Marshal() ([]byte, error) {
	switch m.DataMode {
	case DataComplete, DataPartial:
	default:
		return nil, fmt.Errorf("marshal metadata: datamode %q: %w", m.DataMode, ErrBadMetadata)
	}
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	rec := doc.CreateElement("recording")
	rec.CreateAttr("xmlns", MetadataNS)
	rec.CreateElement("datamode").SetText(m.DataMode)
	for _, s := range m.Sessions {
		e := rec.CreateElement("session")
		e.CreateAttr("session_id", s.ID)
		for _, id := range s.SIPSessionIDs {
			e.CreateElement("sipSessionID").SetText(id)
		}
		timeElem(e, "start-time", s.StartTime)
		timeElem(e, "stop-time", s.StopTime)
	}
	for _, p := range m.Participants {
		e := rec.CreateElement("participant")
		e.CreateAttr("participant_id", p.ID)
		for _, n := range p.Names {
			ne := e.CreateElement("nameID")
			ne.CreateAttr("aor", n.AOR)
			if n.Name != "" {
				nm := ne.CreateElement("name")
				nm.CreateAttr("xml:lang", "en")
				nm.SetText(n.Name)
			}
		}
	}
	for _, s := range m.Streams {
		e := rec.CreateElement("stream")
		e.CreateAttr("stream_id", s.ID)
		e.CreateAttr("session_id", s.SessionID)
		e.CreateElement("label").SetText(s.Label)
	}
	for _, a := range m.SessionRecordingAssocs {
		e := rec.CreateElement("sessionrecordingassoc")
		e.CreateAttr("session_id", a.SessionID)
		timeElem(e, "associate-time", a.AssociateTime)
		timeElem(e, "disassociate-time", a.DisassociateTime)
	}
	for _, a := range m.ParticipantSessionAssocs {
		e := rec.CreateElement("participantsessionassoc")
		e.CreateAttr("participant_id", a.ParticipantID)
		e.CreateAttr("session_id", a.SessionID)
		timeElem(e, "associate-time", a.AssociateTime)
		timeElem(e, "disassociate-time", a.DisassociateTime)
	}
	for _, a := range m.ParticipantStreamAssocs {
		e := rec.CreateElement("participantstreamassoc")
		e.CreateAttr("participant_id", a.ParticipantID)
		for _, id := range a.Send {
			e.CreateElement("send").SetText(id)
		}
		for _, id := range a.Recv {
			e.CreateElement("recv").SetText(id)
		}
	}
	doc.Indent(etree.NoIndent)
	b, err := doc.WriteToBytes()
	if err != nil {
		return nil, fmt.Errorf("marshal metadata: %w", err)
	}
	return b, nil
}

func timeElem(parent *etree.Element, name string, t time.Time) {
	if !t.IsZero() {
		parent.CreateElement(name).SetText(xsDateTime(t))
	}
}

// maxMetadataSize bounds what ParseMetadata reads.
const maxMetadataSize = 1 << 20

// ParseMetadata reads an RFC 7865 document. Elements it does not know
// (RFC 7865's ##other extension points, vendor extensions) are skipped; the
// root must be <recording> in the RFC 7865 namespace (a missing namespace is
// tolerated, a different one is not) and carry a valid datamode.
func ParseMetadata(b []byte) (*Metadata, error) {
	if len(b) > maxMetadataSize {
		return nil, fmt.Errorf("parse metadata: %d bytes: %w", len(b), ErrBadMetadata)
	}
	doc := etree.NewDocument()
	doc.ReadSettings.Permissive = false
	if err := doc.ReadFromBytes(b); err != nil {
		return nil, fmt.Errorf("parse metadata: %v: %w", err, ErrBadMetadata)
	}
	rec := doc.Root()
	if rec == nil || rec.Tag != "recording" {
		return nil, fmt.Errorf("parse metadata: root is not <recording>: %w", ErrBadMetadata)
	}
	if ns := rec.NamespaceURI(); ns != "" && ns != MetadataNS {
		return nil, fmt.Errorf("parse metadata: namespace %q: %w", ns, ErrBadMetadata)
	}
	m := &Metadata{}
	var err error
	for _, e := range rec.ChildElements() {
		if ns := e.NamespaceURI(); ns != "" && ns != MetadataNS {
			continue // ##other
		}
		switch e.Tag {
		case "datamode":
			m.DataMode = strings.TrimSpace(e.Text())
		case "session":
			s := MDSession{ID: e.SelectAttrValue("session_id", "")}
			for _, c := range e.ChildElements() {
				switch c.Tag {
				case "sipSessionID":
					s.SIPSessionIDs = append(s.SIPSessionIDs, strings.TrimSpace(c.Text()))
				case "start-time":
					if s.StartTime, err = parseDateTime(c.Text()); err != nil {
						return nil, fmt.Errorf("parse metadata: session start-time: %w", err)
					}
				case "stop-time":
					if s.StopTime, err = parseDateTime(c.Text()); err != nil {
						return nil, fmt.Errorf("parse metadata: session stop-time: %w", err)
					}
				}
			}
			m.Sessions = append(m.Sessions, s)
		case "participant":
			p := MDParticipant{ID: e.SelectAttrValue("participant_id", "")}
			for _, c := range e.SelectElements("nameID") {
				n := MDNameID{AOR: c.SelectAttrValue("aor", "")}
				if ne := c.SelectElement("name"); ne != nil {
					n.Name = strings.TrimSpace(ne.Text())
				}
				p.Names = append(p.Names, n)
			}
			m.Participants = append(m.Participants, p)
		case "stream":
			s := MDStream{ID: e.SelectAttrValue("stream_id", ""), SessionID: e.SelectAttrValue("session_id", "")}
			if l := e.SelectElement("label"); l != nil {
				s.Label = strings.TrimSpace(l.Text())
			}
			m.Streams = append(m.Streams, s)
		case "sessionrecordingassoc", "participantsessionassoc":
			a := MDAssoc{SessionID: e.SelectAttrValue("session_id", ""), ParticipantID: e.SelectAttrValue("participant_id", "")}
			if err := readAssocTimes(e, &a.AssociateTime, &a.DisassociateTime); err != nil {
				return nil, fmt.Errorf("parse metadata: %s: %w", e.Tag, err)
			}
			if e.Tag == "sessionrecordingassoc" {
				m.SessionRecordingAssocs = append(m.SessionRecordingAssocs, a)
			} else {
				m.ParticipantSessionAssocs = append(m.ParticipantSessionAssocs, a)
			}
		case "participantstreamassoc":
			a := MDStreamAssoc{ParticipantID: e.SelectAttrValue("participant_id", "")}
			for _, c := range e.ChildElements() {
				switch c.Tag {
				case "send":
					a.Send = append(a.Send, strings.TrimSpace(c.Text()))
				case "recv":
					a.Recv = append(a.Recv, strings.TrimSpace(c.Text()))
				}
			}
			m.ParticipantStreamAssocs = append(m.ParticipantStreamAssocs, a)
		}
	}
	switch m.DataMode {
	case DataComplete, DataPartial:
	default:
		return nil, fmt.Errorf("parse metadata: datamode %q: %w", m.DataMode, ErrBadMetadata)
	}
	return m, nil
}

func readAssocTimes(e *etree.Element, assoc, disassoc *time.Time) error {
	var err error
	if c := e.SelectElement("associate-time"); c != nil {
		if *assoc, err = parseDateTime(c.Text()); err != nil {
			return err
		}
	}
	if c := e.SelectElement("disassociate-time"); c != nil {
		if *disassoc, err = parseDateTime(c.Text()); err != nil {
			return err
		}
	}
	return nil
}
