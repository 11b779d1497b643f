package srs

import (
	"errors"
	"testing"
)

func TestMetadataUpdates(t *testing.T) {
	srv, _ := startServer(t)
	ctx := waitCtx(t)
	for _, transport := range []string{"UDP", "TCP"} {
		t.Run(transport, func(t *testing.T) {
			src := newTestSRC(t, srv.Addr().String(), transport)
			src.snapshot = testMetadata("complete", "1", "snap")
			res := src.invite(ctx, "multipart/mixed;boundary="+testBoundary,
				multipartBody(src.sdpOffer([]string{"sendonly"}, []string{"1"}, nil), testMetadata("complete", "1")))
			if res.StatusCode != 200 {
				t.Fatalf("invite: %d", res.StatusCode)
			}
			si := sessionOf(t, ctx, srv, src.callID, func(SessionInfo) bool { return true })

			// The SRS asks for a snapshot (RFC 7866 §9.2).
			meta, err := srv.RequestMetadata(ctx, si.ID)
			if err != nil {
				t.Fatal(err)
			}
			if string(meta) != src.snapshot {
				t.Fatalf("snapshot %q", meta)
			}
			select {
			case req := <-src.updates:
				if ct := req.ContentType(); ct == nil || ct.Value() != typeMetadataRequest {
					t.Fatalf("UPDATE content type %v", req.ContentType())
				}
				if c := req.Contact(); c == nil || !c.Params.Has("+sip.srs") {
					t.Fatalf("UPDATE contact %v", req.Contact())
				}
			case <-ctx.Done():
				t.Fatal("no UPDATE reached the SRC")
			}

			// The SRC sends a partial update in an UPDATE of its own.
			partial := testMetadata("partial", "1")
			body := "--u\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n" + partial + "\r\n--u--\r\n"
			if res := src.request(ctx, "UPDATE", "multipart/mixed;boundary=u", body); res.StatusCode != 200 {
				t.Fatalf("update: %d", res.StatusCode)
			}
			// SDP in an UPDATE is refused.
			if res := src.request(ctx, "UPDATE", "application/sdp", src.sdpOffer([]string{"sendonly"}, []string{"1"}, nil)); res.StatusCode != 488 {
				t.Fatalf("sdp update: %d", res.StatusCode)
			}
			si = sessionOf(t, ctx, srv, src.callID, func(si SessionInfo) bool { return si.MetadataUpdates == 3 })
			if string(si.Metadata) != partial || len(si.Violations) != 0 {
				t.Fatalf("metadata %q violations %v", si.Metadata, si.Violations)
			}
			if res := src.bye(ctx); res.StatusCode != 200 {
				t.Fatalf("bye: %d", res.StatusCode)
			}
			if _, err := srv.RequestMetadata(ctx, si.ID); !errors.Is(err, ErrNoSession) {
				t.Fatalf("after bye: %v", err)
			}
		})
	}
}

func TestParseMetadataBody(t *testing.T) {
	meta := testMetadata("partial", "1")
	cases := []struct {
		name, ct, body string
		code           int
		want           string
		disp           bool
	}{
		{"empty", "", "", 0, "", false},
		{"lone xml", typeMetadata, meta, 0, meta, true},
		{"legacy", typeMetadataLegacy, meta, 0, meta, true},
		{"multipart", "multipart/mixed;boundary=u", "--u\r\nContent-Type: application/rs-metadata+xml\r\n\r\n" + meta + "\r\n--u--\r\n", 0, meta, false},
		{"sdp", typeSDP, "v=0\r\n", 488, "", false},
		{"multipart with sdp", "multipart/mixed;boundary=" + testBoundary, multipartBody(bodyOffer, meta), 488, "", false},
		{"bad xml", typeMetadata, "<a>", 400, "", false},
		{"json", "application/json", "{}", 415, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, disp, err := parseMetadataBody(c.ct, []byte(c.body))
			if c.code != 0 {
				var be *BodyError
				if !errors.As(err, &be) || be.Code != c.code {
					t.Fatalf("got %v, want %d", err, c.code)
				}
				return
			}
			if err != nil || string(got) != c.want || disp != c.disp {
				t.Fatalf("got %q %v %v", got, disp, err)
			}
		})
	}
}
