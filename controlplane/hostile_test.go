package controlplane_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/recfork/recfork/controlplane"
	"github.com/recfork/recfork/dataplane"
)

// The hostile-input suite (issue 13): each case is something an attacker
// did to recforkd, over real sockets on loopback.

// startLimited starts a service on the test engine with the given limits.
func startLimited(t *testing.T, lim controlplane.Limits, mod func(*controlplane.Config)) *controlplane.Service {
	t.Helper()
	dir := t.TempDir()
	eng := newTestEngine()
	t.Cleanup(func() { eng.Close() })
	cfg := controlplane.Config{
		Listen: "127.0.0.1:0", Engine: eng, Admin: "-", RecordingsDir: filepath.Join(dir, "rec"),
		RTPPorts: dataplane.PortRange{Min: 32000, Max: 32999}, Limits: lim, Logger: testLogger(t),
	}
	if mod != nil {
		mod(&cfg)
	}
	svc, err := controlplane.NewService(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

func TestHostileSIPHygiene(t *testing.T) {
	svc := startLimited(t, controlplane.Limits{}, nil)
	// One socket per case: a final response to an INVITE is retransmitted.
	var r *rawSIP
	for _, tc := range []struct {
		name string
		msg  func() string
		want string
	}{
		{"Max-Forwards 0", func() string {
			return strings.Replace(r.request("INVITE", "mf0", "", "application/sdp", sdpOffer(4000, "0"), 1), "Max-Forwards: 70", "Max-Forwards: 0", 1)
		}, "SIP/2.0 483 "},
		{"CSeq method mismatch", func() string {
			return strings.Replace(r.request("OPTIONS", "cseq", "", "", "", 1), "CSeq: 1 OPTIONS", "CSeq: 1 INVITE", 1)
		}, "SIP/2.0 400 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r = newRawSIP(t, svc.Daemon().SIPAddr().String())
			r.send(tc.msg())
			if got := r.expectFinal(); !strings.HasPrefix(got, tc.want) {
				t.Fatalf("want %q, got:\n%s", tc.want, got)
			}
		})
	}
	if n := len(svc.Daemon().Connections()); n != 0 {
		t.Fatalf("%d connections after refused requests", n)
	}
}

func TestHostileMaxCalls(t *testing.T) {
	svc := startLimited(t, controlplane.Limits{MaxCalls: 1}, func(c *controlplane.Config) { c.App = writeApp(t, ringingApp) })
	r := newRawSIP(t, svc.Daemon().SIPAddr().String())
	r.send(r.request("INVITE", "first", "", "application/sdp", sdpOffer(4000, "0"), 1))
	r.expect(180)
	r.send(r.request("INVITE", "second", "", "application/sdp", sdpOffer(4002, "0"), 1))
	res := r.expect(503)
	if headerLine(res, "Retry-After") == "" || !strings.Contains(res, "limit calls") {
		t.Fatalf("503 without Retry-After or cause:\n%s", res)
	}
}

func TestHostileInviteRatePerSource(t *testing.T) {
	// A burst of one: the second INVITE inside two seconds is refused.
	svc := startLimited(t, controlplane.Limits{InviteRatePerSource: 0.5}, nil)
	r := newRawSIP(t, svc.Daemon().SIPAddr().String())
	r.send(r.request("INVITE", "rate1", "", "text/plain", "x", 1))
	r.expect(415)
	r.send(r.request("INVITE", "rate2", "", "text/plain", "x", 1))
	res := r.expect(503)
	if !strings.Contains(res, "invite_rate_source") {
		t.Fatalf("503 without its cause:\n%s", res)
	}
	// OPTIONS (and the admin side) still answer.
	r.send(r.request("OPTIONS", "rate3", "", "", "", 1))
	r.expect(200)
}

// readsToEOF says whether the server closed c within the bound.
func readsToEOF(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server kept a silent connection open")
	}
}

func TestHostileTCPSilentAndTooMany(t *testing.T) {
	svc := startLimited(t, controlplane.Limits{TCPFirstReadTimeout: 200 * time.Millisecond, MaxTCPConnsPerSource: 2}, nil)
	addr := svc.Daemon().SIPAddr().String()
	t.Run("silent connection is closed", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		readsToEOF(t, c)
	})
	t.Run("connections over the per-source cap are closed", func(t *testing.T) {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for range 2 {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			// Keep these busy so the first-read timeout is not what closes
			// the third.
			if _, err := c.Write([]byte("\r\n")); err != nil {
				t.Fatal(err)
			}
			held = append(held, c)
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		readsToEOF(t, c)
	})
}

func TestHostileHTTP(t *testing.T) {
	dir := t.TempDir()
	app := filepath.Join(dir, "idle.ccxml")
	if err := os.WriteFile(app, []byte(idleApp), 0o644); err != nil {
		t.Fatal(err)
	}
	const token = "t0ken-for-tests"
	svc := startLimited(t, controlplane.Limits{MaxSessions: 1}, func(c *controlplane.Config) {
		c.HTTP, c.HTTPToken, c.SessionRoots = "127.0.0.1:0", token, []string{dir}
	})
	base := "http://" + svc.HTTPAddr()
	post := func(path string, form url.Values, auth string) (int, string) {
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name string
		path string
		form url.Values
		auth string
		want int
	}{
		{"createsession without token", "/createsession", url.Values{"uri": {app}}, "", 401},
		{"basichttp with a wrong token", "/basichttp", url.Values{"sessionid": {"x"}, "name": {"y"}}, "nope", 401},
		{"a file outside the roots", "/createsession", url.Values{"uri": {"/etc/passwd"}}, token, 403},
		{"a missing file inside the roots", "/createsession", url.Values{"uri": {filepath.Join(dir, "none.ccxml")}}, token, 403},
		{"dot-dot out of the roots", "/createsession", url.Values{"uri": {dir + "/../../etc/passwd"}}, token, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := post(tc.path, tc.form, tc.auth); code != tc.want {
				t.Fatalf("%d %q, want %d", code, body, tc.want)
			}
		})
	}
	code, id := post("/createsession", url.Values{"uri": {app}}, token)
	id = strings.TrimSpace(id)
	if code != 200 || !regexp.MustCompile(`^s-[0-9a-f]{32}$`).MatchString(id) {
		t.Fatalf("createsession: %d %q (want an unguessable id)", code, id)
	}
	if code, _ := post("/createsession", url.Values{"uri": {app}}, token); code != http.StatusTooManyRequests {
		t.Fatalf("a session over MaxSessions: %d", code)
	}
	// A malformed body is not echoed back.
	req, _ := http.NewRequest("POST", base+"/basichttp", strings.NewReader("sessionid=%zzSECRET"+strings.Repeat("A", 1000)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 400 || strings.Contains(string(b), "SECRET") {
		t.Fatalf("malformed form: %d %q", res.StatusCode, b)
	}
	// A body over the limit is refused, not read.
	code, body := post("/basichttp", url.Values{"sessionid": {id}, "name": {"x"}, "pad": {strings.Repeat("B", 100<<10)}}, token)
	if code != http.StatusRequestEntityTooLarge || strings.Contains(body, "BBBB") {
		t.Fatalf("large body: %d %q", code, body[:min(len(body), 80)])
	}
}

func TestHostileHTTPNeedsTokenOffLoopback(t *testing.T) {
	eng := newTestEngine()
	defer eng.Close()
	_, err := controlplane.NewService(context.Background(), controlplane.Config{
		Listen: "127.0.0.1:0", Engine: eng, Admin: "-", HTTP: "0.0.0.0:0", Logger: testLogger(t),
	})
	if !errors.Is(err, controlplane.ErrBadConfig) {
		t.Fatalf("--http on a wildcard address without a token: %v", err)
	}
}

func TestHostileMediaTimeoutEndsCall(t *testing.T) {
	svc := startLimited(t, controlplane.Limits{MediaTimeout: 300 * time.Millisecond}, nil)
	r := newRawSIP(t, svc.Daemon().SIPAddr().String())
	const cid = "silent-caller"
	r.send(r.request("INVITE", cid, "", "application/sdp", sdpOffer(4000, "0"), 1))
	ok := r.expect(200)
	_, tag, _ := strings.Cut(headerLine(ok, "To"), "tag=")
	r.send(r.request("ACK", cid, tag, "", "", 1))
	bye := r.expectRequest("BYE")
	if headerLine(bye, "Call-ID") != cid {
		t.Fatalf("BYE for another call:\n%s", bye)
	}
	waitFor(t, "the call to end", func() bool { return len(svc.Daemon().Connections()) == 0 })
}

func TestHostileAdminDir(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := controlplane.CheckAdminDir(open, false); !errors.Is(err, controlplane.ErrUnsafeAdmin) {
		t.Fatalf("a world-writable directory: %v", err)
	}
	priv := filepath.Join(dir, "priv")
	if err := controlplane.CheckAdminDir(priv, true); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(priv); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("created admin dir: %v %v", fi.Mode(), err)
	}
}
