package siprec

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strings"
)

// Part is one body part of a SIP message body.
type Part struct {
	// ContentType is the media type with its parameters, e.g. "application/sdp".
	ContentType string
	// Disposition is the Content-Disposition header, e.g. "recording-session";
	// empty means none.
	Disposition string
	Body        []byte
}

// MediaType returns the part's media type, lower case, without parameters.
func (p Part) MediaType() string {
	mt, _, err := mime.ParseMediaType(p.ContentType)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(p.ContentType))
	}
	return mt
}

// maxBodySize bounds bodies we parse.
const maxBodySize = 1 << 20

// bodyFault is a body we cannot read, with the SIP status and reason phrase
// it earns when it came in a request (RFC 3261 §21.4.1: 400 for a malformed
// request, §21.4.11: 413 for one too large), so an SRS's engineer reads the
// cause in the response rather than in our logs. It wraps ErrBadBody or
// ErrBadSDP.
type bodyFault struct {
	code   int
	phrase string
	detail string
	kind   error
}

func (f *bodyFault) Error() string { return f.detail + ": " + f.kind.Error() }
func (f *bodyFault) Unwrap() error { return f.kind }

func newFault(code int, phrase string, kind error, format string, args ...any) error {
	return &bodyFault{code: code, phrase: phrase, detail: fmt.Sprintf(format, args...), kind: kind}
}

func badBody(phrase, format string, args ...any) error {
	return newFault(400, phrase, ErrBadBody, "parse body: "+format, args...)
}

// writeMultipart builds a multipart/mixed body (RFC 2046 §5.1) and returns it
// with its Content-Type value. Part headers are written "Name: value" with
// the space: one SRS's parser broke without it.
func writeMultipart(boundary string, parts ...Part) (contentType string, body []byte, err error) {
	if boundary == "" {
		var b [12]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", nil, fmt.Errorf("multipart boundary: %w", err)
		}
		boundary = "recfork-" + hex.EncodeToString(b[:])
	}
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	if err := w.SetBoundary(boundary); err != nil {
		return "", nil, fmt.Errorf("multipart boundary %q: %w", boundary, err)
	}
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", p.ContentType)
		if p.Disposition != "" {
			h.Set("Content-Disposition", p.Disposition)
		}
		pw, err := w.CreatePart(h)
		if err != nil {
			return "", nil, fmt.Errorf("multipart part: %w", err)
		}
		if _, err := pw.Write(p.Body); err != nil {
			return "", nil, fmt.Errorf("multipart part: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return "", nil, fmt.Errorf("multipart close: %w", err)
	}
	return "multipart/mixed;boundary=" + boundary, buf.Bytes(), nil
}

// ParseBody splits a SIP message body by its Content-Type: a multipart/mixed
// body gives its parts, anything else one part.
func ParseBody(contentType string, body []byte) ([]Part, error) {
	if len(body) > maxBodySize {
		return nil, newFault(413, "Request Entity Too Large", ErrBadBody, "parse body: %d bytes", len(body))
	}
	if contentType == "" {
		if len(body) == 0 {
			return nil, nil
		}
		return nil, badBody("Missing Content-Type", "body without Content-Type")
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, badBody("Malformed Content-Type", "content type %q: %v", contentType, err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		return []Part{{ContentType: contentType, Body: body}}, nil
	}
	boundary := params["boundary"]
	if boundary == "" {
		return nil, badBody("Missing Multipart Boundary", "%s without boundary", mt)
	}
	r := multipart.NewReader(bytes.NewReader(body), boundary)
	var parts []Part
	for {
		p, err := r.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil && len(parts) == 0 {
			// mime/multipart says only "EOF" when the delimiter never
			// appears; name the cause.
			return nil, badBody("Multipart Boundary Not Found", "no part delimited by boundary %q: %v", boundary, err)
		}
		if err != nil {
			return nil, badBody("Malformed Multipart Body", "%v", err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return nil, badBody("Malformed Multipart Body", "part %d: %v", len(parts)+1, err)
		}
		ct := partHeader(p.Header, "Content-Type", "C")
		if ct == "" {
			ct = "text/plain" // RFC 2046 §5.1: the default part type
		}
		parts = append(parts, Part{ContentType: ct, Disposition: partHeader(p.Header, "Content-Disposition", ""), Body: b})
		if len(parts) > 16 {
			return nil, badBody("Too Many Body Parts", "more than 16 parts")
		}
	}
	if len(parts) == 0 {
		return nil, badBody("Multipart Boundary Not Found", "no part delimited by boundary %q", boundary)
	}
	return parts, nil
}

// partHeader reads a part header by its name, or by its SIP compact form
// (RFC 3261 §7.3.3: "c" for Content-Type, "l" for Content-Length) which some
// SRSs also use inside multipart bodies. textproto already folds the case of
// header names, so "content-type" and "CONTENT-TYPE" are found too.
func partHeader(h textproto.MIMEHeader, name, compact string) string {
	if v := strings.TrimSpace(h.Get(name)); v != "" {
		return v
	}
	if compact != "" {
		return strings.TrimSpace(h.Get(compact))
	}
	return ""
}

// findPart returns the first part of one of the media types.
func findPart(parts []Part, types ...string) (Part, bool) {
	for _, p := range parts {
		mt := p.MediaType()
		for _, t := range types {
			if mt == t {
				return p, true
			}
		}
	}
	return Part{}, false
}
