package siprec

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"

	"github.com/recfork/recfork/internal/testcert"
	"github.com/recfork/recfork/siprec/srs"
)

// mtlsSRS runs the built-in SRS over TLS requiring a client certificate
// that chains to clients (mutual TLS, RFC 5630 §3.1.3 style deployments).
func mtlsSRS(t *testing.T, ca, clients *testcert.CA) *srs.Server {
	t.Helper()
	s, err := srs.New(srs.Config{Listen: "127.0.0.1:0", Dir: t.TempDir(), Logger: discardLogger(),
		TLS: &srs.TLS{Config: &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "127.0.0.1").Cert}, RootCAs: ca.Pool,
			ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clients.Pool}}})
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

// TestTLSMutual: an SRS that requires client certificates records an SRC
// whose certificate it trusts and refuses one it does not trust. Under TLS
// 1.3 the SRS's refusal (an alert) comes after the client's handshake has
// finished, and sipgo does not hand a connection closed after the INVITE
// was written to the transaction: the document hears srs-timeout over tls,
// or srs-unreachable when the alert beat the write (siprec/doc.go says so);
// nothing is recorded.
func TestTLSMutual(t *testing.T) {
	ca, other := testcert.NewCA(t), testcert.NewCA(t)
	for _, tc := range []struct {
		name string
		conf func(*Config)
		ok   bool
	}{
		{"trusted client certificate", withTLS(ca.Issue(t, "127.0.0.1"), ca), true},
		{"client certificate of another CA", withTLS(other.Issue(t, "127.0.0.1"), ca), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mtlsSRS(t, ca, ca)
			h := newHarness(t, tc.conf)
			h.record(t, fmt.Sprintf("sips:srs@127.0.0.1:%d", s.TLSAddr().Port()), "active", "active")
			e := h.wait(t)
			if tc.ok {
				expect(t, e, EventUpdate, OpStart, "", ModeActive, ModeActive)
				waitSRS(t, s, "a live session", func(ss []srs.SessionInfo) bool {
					return len(ss) == 1 && ss[0].State == srs.StateActive && ss[0].Transport == "TLS"
				})
				return
			}
			// Which of the two depends on whether the SRS's alert beats
			// the INVITE's write: a broken pipe is srs-unreachable.
			code, _, _ := strings.Cut(e.Reason, ":")
			if e.Name != EventError || (code != ReasonSRSTimeout && code != ReasonSRSUnreachable) || e.Inbound != ModeNone || e.Outbound != ModeNone {
				t.Fatalf("event %+v, want error.bvr.record srs-timeout or srs-unreachable", e)
			}
			if !strings.Contains(e.Reason, "via tls:") {
				t.Errorf("reason %q does not name the transport", e.Reason)
			}
			if n := len(s.Sessions()); n != 0 {
				t.Errorf("srs has %d sessions", n)
			}
		})
	}
}
