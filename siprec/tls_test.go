package siprec

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/recfork/recfork/internal/testcert"
	"github.com/recfork/recfork/internal/testenv"
	"github.com/recfork/recfork/siprec/srs"
)

// tlsSRS runs the built-in SRS with a TLS listener serving leaf.
func tlsSRS(t *testing.T, leaf *testcert.Leaf, ca *testcert.CA) *srs.Server {
	t.Helper()
	s, err := srs.New(srs.Config{Listen: "127.0.0.1:0", Dir: t.TempDir(), Logger: discardLogger(),
		TLS: &srs.TLS{Config: &tls.Config{Certificates: []tls.Certificate{leaf.Cert}, RootCAs: ca.Pool}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s
}

func withTLS(leaf *testcert.Leaf, ca *testcert.CA) func(*Config) {
	return func(c *Config) {
		c.TLS = &TLSConfig{Certificates: []tls.Certificate{leaf.Cert}, RootCAs: ca.Pool}
	}
}

// TestTLSBuiltinSRS records over TLS to the built-in SRS: the SRS's
// certificate is verified against the test CA and the URI's host (an IP
// address and a host name), the SRS's own BYE comes back over TLS to our
// sips: Contact, and the session's transport reads tls on both sides.
func TestTLSBuiltinSRS(t *testing.T) {
	ca := testcert.NewCA(t)
	for _, tc := range []struct{ name, host string }{
		{"ip address", "127.0.0.1"},
		{"host name", "localhost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tlsSRS(t, ca.Issue(t, tc.host), ca)
			h := newHarness(t, withTLS(ca.Issue(t, "127.0.0.1"), ca))
			uri := fmt.Sprintf("sips:srs@%s:%d", tc.host, s.TLSAddr().Port())

			h.record(t, uri, "active", "active")
			e := h.wait(t)
			expect(t, e, EventUpdate, OpStart, "", ModeActive, ModeActive)
			if e.Transport != "tls" {
				t.Errorf("event transport %q, want tls", e.Transport)
			}
			ss := waitSRS(t, s, "a live session", func(ss []srs.SessionInfo) bool {
				return len(ss) == 1 && ss[0].State == srs.StateActive
			})
			if ss[0].Transport != "TLS" {
				t.Errorf("srs saw transport %q, want TLS", ss[0].Transport)
			}
			// A re-INVITE goes over the dialog's TLS connection.
			h.record(t, uri, "inactive", "")
			expect(t, h.wait(t), EventUpdate, OpUpdate, "", ModeInactive, ModeActive)

			// The SRS hangs up: its BYE reaches us over TLS.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := s.Bye(ctx, ss[0].ID); err != nil {
				t.Fatal(err)
			}
			expect(t, h.wait(t), EventError, "", ReasonSRSEnded, ModeNone, ModeNone)
			noViolations(t, s.Sessions())
		})
	}
}

// TestTLSRefused checks that an SRS whose certificate cannot be trusted is
// srs-unreachable with the TLS reason, and that TLS is refused while not
// configured.
func TestTLSRefused(t *testing.T) {
	ca, other := testcert.NewCA(t), testcert.NewCA(t)
	for _, tc := range []struct {
		name    string
		srsLeaf *testcert.Leaf
		tlsOn   bool
		uri     func(*srs.Server) string
		code    string
		want    string
	}{
		{"unknown authority", other.Issue(t, "127.0.0.1"), true,
			func(s *srs.Server) string { return fmt.Sprintf("sips:srs@127.0.0.1:%d", s.TLSAddr().Port()) },
			ReasonSRSUnreachable, "certificate signed by unknown authority"},
		{"name mismatch", ca.Issue(t, "srs.example"), true,
			func(s *srs.Server) string { return fmt.Sprintf("sips:srs@127.0.0.1:%d", s.TLSAddr().Port()) },
			ReasonSRSUnreachable, "127.0.0.1"},
		{"transport=tls without tls", ca.Issue(t, "127.0.0.1"), false,
			func(s *srs.Server) string {
				return fmt.Sprintf("sip:srs@127.0.0.1:%d;transport=tls", s.TLSAddr().Port())
			},
			ReasonBadURI, "not configured"},
		{"sips without tls", ca.Issue(t, "127.0.0.1"), false,
			func(s *srs.Server) string { return fmt.Sprintf("sips:srs@127.0.0.1:%d", s.TLSAddr().Port()) },
			ReasonBadURI, "not configured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tlsSRS(t, tc.srsLeaf, ca)
			var mods []func(*Config)
			if tc.tlsOn {
				mods = append(mods, withTLS(ca.Issue(t, "127.0.0.1"), ca))
			}
			h := newHarness(t, mods...)
			h.record(t, tc.uri(s), "active", "active")
			e := h.wait(t)
			expect(t, e, EventError, "", tc.code, ModeNone, ModeNone)
			if !strings.Contains(e.Reason, tc.want) {
				t.Errorf("reason %q does not say %q", e.Reason, tc.want)
			}
			if n := len(s.Sessions()); n != 0 {
				t.Errorf("srs has %d sessions", n)
			}
		})
	}
}

// TestTLSOpenSSLPeer speaks SIP over TLS to the built-in SRS and to the SRC
// with openssl s_client, a TLS client someone else wrote: each verifies the
// server's certificate against the test CA and answers an OPTIONS with 200.
func TestTLSOpenSSLPeer(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		testenv.Unavailable(t, "openssl is not installed (.ci/run installs it)")
	}
	ca := testcert.NewCA(t)
	dir := t.TempDir()
	caFile := ca.File(t, dir)
	s := tlsSRS(t, ca.Issue(t, "127.0.0.1"), ca)
	h := newHarness(t, withTLS(ca.Issue(t, "127.0.0.1"), ca))
	for _, tc := range []struct {
		name string
		addr string
	}{
		{"srs", s.TLSAddr().String()},
		{"src", h.c.TLSAddr().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "openssl", "s_client", "-connect", tc.addr, "-CAfile", caFile,
				"-verify_return_error", "-verify_ip", "127.0.0.1", "-quiet", "-ign_eof")
			in, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Wait() }()
			defer cmd.Process.Kill()
			req := "OPTIONS sips:" + tc.addr + " SIP/2.0\r\n" +
				"Via: SIP/2.0/TLS 127.0.0.1:5099;branch=z9hG4bK-openssl-1\r\n" +
				"Max-Forwards: 70\r\nFrom: <sips:probe@127.0.0.1>;tag=o1\r\nTo: <sips:" + tc.addr + ">\r\n" +
				"Call-ID: openssl-probe-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
			if _, err := in.Write([]byte(req)); err != nil {
				t.Fatal(err)
			}
			status, err := bufio.NewReader(out).ReadString('\n')
			if err != nil {
				t.Fatalf("no answer over TLS: %v; openssl: %s", err, stderr.String())
			}
			if !strings.HasPrefix(status, "SIP/2.0 200") {
				t.Errorf("answer %q", status)
			}
		})
	}
}
