package srs

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strings"
)

// Media types of a SIPREC INVITE body (RFC 7866 §9, RFC 9806).
const (
	typeMultipart      = "multipart/mixed"
	typeSDP            = "application/sdp"
	typeMetadata       = "application/rs-metadata+xml"
	typeMetadataLegacy = "application/rs-metadata"
	// typeMetadataRequest asks the SRC for a snapshot (RFC 7866 §9.2).
	typeMetadataRequest = "application/rs-metadata-request"
	// dispositionRecording marks the metadata part (RFC 7866 §9).
	dispositionRecording = "recording-session"
	// acceptTypes is sent with 415 (RFC 3261 §21.4.13).
	acceptTypes = "application/sdp, application/rs-metadata+xml, multipart/mixed"
	// maxPart bounds one body part; SIP bodies are far smaller.
	maxPart = 1 << 20
	// recordingNS is the RFC 7865 metadata namespace.
	recordingNS = "urn:ietf:params:xml:ns:recording:1"
)

// sipBody is the usable content of an INVITE body.
type sipBody struct {
	sdp          []byte
	metadata     []byte // nil when the body carried none
	metadataType string
	// dispositionOK is false when the metadata part lacked
	// Content-Disposition: recording-session.
	dispositionOK bool
}

func bodyErr(code int, reason, detail string) *BodyError {
	return &BodyError{Code: code, Reason: reason, Detail: detail}
}

// parseBody splits an INVITE body. needMetadata is true on the initial
// INVITE, where RFC 7866 §6.1.1 requires the metadata; a re-INVITE may carry
// SDP alone. Every failure is a *BodyError carrying the SIP response.
func parseBody(contentType string, body []byte, needMetadata bool) (*sipBody, error) {
	if len(body) == 0 {
		if needMetadata {
			return nil, bodyErr(400, "Missing SIPREC Body", "want multipart/mixed with application/sdp and application/rs-metadata+xml")
		}
		return nil, bodyErr(400, "Missing SDP Offer", "offerless re-INVITE not supported")
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, bodyErr(400, "Malformed Content-Type", err.Error())
	}
	switch mt {
	case typeSDP:
		if needMetadata {
			return nil, bodyErr(400, "Missing Recording Metadata", "body is application/sdp, not multipart/mixed with rs-metadata")
		}
		return &sipBody{sdp: body}, nil
	case typeMultipart:
	default:
		return nil, bodyErr(415, "Unsupported Media Type", "content type "+mt)
	}
	out, err := splitMultipart(params["boundary"], body)
	if err != nil {
		return nil, err
	}
	if out.sdp == nil {
		return nil, bodyErr(400, "Missing SDP Part", "multipart body has no application/sdp part")
	}
	if out.metadata == nil && needMetadata {
		return nil, bodyErr(400, "Missing Recording Metadata", "multipart body has no application/rs-metadata+xml part")
	}
	return out, nil
}

// splitMultipart collects the SDP and metadata parts of a multipart/mixed
// body (RFC 2046 §5.1) and checks that the metadata is well-formed XML.
func splitMultipart(boundary string, body []byte) (*sipBody, error) {
	if boundary == "" {
		return nil, bodyErr(400, "Malformed Multipart Body", "no boundary parameter")
	}
	out := &sipBody{}
	r := multipart.NewReader(bytes.NewReader(body), boundary)
	for n := 0; ; n++ {
		p, err := r.NextRawPart()
		if errors.Is(err, io.EOF) {
			if n == 0 {
				// mime/multipart reports a body without the delimiter as
				// an empty one; say what is wrong instead.
				return nil, bodyErr(400, "Malformed Multipart Body", "no part delimited by boundary "+boundary)
			}
			break
		}
		if err != nil {
			return nil, bodyErr(400, "Malformed Multipart Body", err.Error())
		}
		data, err := io.ReadAll(io.LimitReader(p, maxPart+1))
		if err != nil {
			return nil, bodyErr(400, "Malformed Multipart Body", err.Error())
		}
		if len(data) > maxPart {
			return nil, bodyErr(400, "Malformed Multipart Body", "part too large")
		}
		rawType := partHeader(p.Header, "Content-Type", "C")
		pt := "text/plain" // RFC 2046 §5.1: a part without Content-Type
		if rawType != "" {
			t, _, err := mime.ParseMediaType(rawType)
			if err != nil {
				return nil, bodyErr(400, "Malformed Multipart Body", fmt.Sprintf("part content type %q: %v", rawType, err))
			}
			pt = t
		}
		disp, dparams, _ := mime.ParseMediaType(partHeader(p.Header, "Content-Disposition", ""))
		switch pt {
		case typeSDP:
			if out.sdp != nil {
				return nil, bodyErr(400, "Multiple SDP Parts", "")
			}
			out.sdp = data
		case typeMetadata, typeMetadataLegacy:
			if out.metadata != nil {
				return nil, bodyErr(400, "Multiple Metadata Parts", "")
			}
			out.metadata = data
			out.metadataType = pt
			out.dispositionOK = disp == dispositionRecording
		default:
			// RFC 3261 §20.11: an unknown part may be ignored unless its
			// disposition says handling=required.
			if strings.EqualFold(dparams["handling"], "required") {
				return nil, bodyErr(415, "Unsupported Media Type", "required part of type "+pt)
			}
		}
	}
	if out.metadata != nil {
		if _, err := inspectMetadata(out.metadata); err != nil {
			return nil, bodyErr(400, "Malformed Recording Metadata", err.Error())
		}
	}
	return out, nil
}

// partHeader reads a part header by its name, or by its SIP compact form
// (RFC 3261 §7.3.3: "c" for Content-Type) that some SRCs use inside
// multipart bodies too. textproto folds the case of header names, so any
// case is found.
func partHeader(h textproto.MIMEHeader, name, compact string) string {
	if v := strings.TrimSpace(h.Get(name)); v != "" {
		return v
	}
	if compact != "" {
		return strings.TrimSpace(h.Get(compact))
	}
	return ""
}

// normalizeSDP gives pion/sdp the shape it insists on: every line, the
// last one included, ends in CRLF and there are no blank lines. RFC 7866's
// own examples end the SDP part at the multipart delimiter, whose leading
// CRLF belongs to the delimiter (RFC 2046 §5.1.1), so the last SDP line has
// no line end; others send LF-only lines (RFC 4566 §5 allows a bare LF).
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

// metaSummary is what the server reads from RFC 7865 metadata; the document
// itself is stored as received.
type metaSummary struct {
	root     xml.Name
	dataMode string
	labels   []string // <stream><label> values in document order
}

// inspectMetadata checks that b is one well-formed XML document and pulls
// out the root, datamode and stream labels. Unknown elements are fine
// (the RFC 7865 schema allows ##other).
func inspectMetadata(b []byte) (metaSummary, error) {
	var m metaSummary
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	var path []string
	var text strings.Builder
	roots := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return m, fmt.Errorf("parse metadata xml: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(path) == 0 {
				roots++
				if roots > 1 {
					return m, errors.New("parse metadata xml: more than one root element")
				}
				m.root = t.Name
			}
			path = append(path, t.Name.Local)
			text.Reset()
		case xml.CharData:
			if len(path) == 0 {
				if len(bytes.TrimSpace(t)) > 0 {
					return m, errors.New("parse metadata xml: text outside the root element")
				}
				continue
			}
			text.Write(t)
		case xml.EndElement:
			v := strings.TrimSpace(text.String())
			switch {
			case len(path) == 2 && t.Name.Local == "datamode":
				m.dataMode = v
			case len(path) == 3 && path[1] == "stream" && t.Name.Local == "label":
				m.labels = append(m.labels, v)
			}
			path = path[:len(path)-1]
			text.Reset()
		}
	}
	if roots == 0 {
		return m, errors.New("parse metadata xml: no root element")
	}
	return m, nil
}

// parseMetadataBody reads the metadata of an UPDATE or of a response: an
// rs-metadata body alone, or a multipart body with a metadata part and no
// SDP. An empty body yields nil metadata and no error.
func parseMetadataBody(contentType string, body []byte) (meta []byte, dispositionOK bool, err error) {
	if len(body) == 0 {
		return nil, false, nil
	}
	mt, params, perr := mime.ParseMediaType(contentType)
	if perr != nil {
		return nil, false, bodyErr(400, "Malformed Content-Type", perr.Error())
	}
	switch mt {
	case typeMetadata, typeMetadataLegacy:
		if _, err := inspectMetadata(body); err != nil {
			return nil, false, bodyErr(400, "Malformed Recording Metadata", err.Error())
		}
		// A lone body has no part headers; its disposition is the
		// message's, which SIP leaves to the Content-Disposition header.
		return body, true, nil
	case typeSDP:
		return nil, false, bodyErr(488, "Not Acceptable Here", "SDP in UPDATE not supported")
	case typeMultipart:
		out, err := splitMultipart(params["boundary"], body)
		if err != nil {
			return nil, false, err
		}
		if out.sdp != nil {
			return nil, false, bodyErr(488, "Not Acceptable Here", "SDP in UPDATE not supported")
		}
		return out.metadata, out.dispositionOK, nil
	}
	return nil, false, bodyErr(415, "Unsupported Media Type", "content type "+mt)
}
