package controlplane_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recfork/recfork/controlplane"
	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/internal/testcert"
	"github.com/recfork/recfork/internal/testenv"
)

// opensslSIP runs openssl s_client (a TLS client nobody here wrote), built
// by mk with the context that bounds it, sends one OPTIONS over it to addr
// from the address from, and returns the answer's status line, or "" and
// openssl's complaint when no answer came (a refused handshake).
func opensslSIP(t *testing.T, mk func(ctx context.Context) *exec.Cmd, addr, from string) (status, complaint string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := mk(ctx)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outp, err := cmd.StdoutPipe()
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
	go func() {
		<-ctx.Done()
		_ = cmd.Process.Kill()
	}()
	req := "OPTIONS sips:" + addr + " SIP/2.0\r\n" +
		"Via: SIP/2.0/TLS " + from + ":5099;branch=z9hG4bK-openssl-1\r\n" +
		"Max-Forwards: 70\r\nFrom: <sips:probe@" + from + ">;tag=o1\r\nTo: <sips:" + addr + ">\r\n" +
		"Call-ID: openssl-probe-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
	if _, err := in.Write([]byte(req)); err != nil {
		return "", "write: " + err.Error() + "; openssl: " + stderr.String()
	}
	line, err := bufio.NewReader(outp).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return "", stderr.String()
	}
	return line, ""
}

// TestCallListenerMutualTLS: with --tls-client-ca the TLS call listener
// answers a caller whose client certificate chains to it, and refuses, in
// the handshake, one without a certificate and one from another CA. The
// caller is openssl s_client.
func TestCallListenerMutualTLS(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		testenv.Unavailable(t, "openssl is not installed (.ci/run installs it)")
	}
	dir := t.TempDir()
	ca, callers, other := testcert.NewCA(t), testcert.NewCA(t), testcert.NewCA(t)
	certFile, keyFile := ca.Issue(t, "127.0.0.1").Files(t, dir, "recforkd")
	caFile := ca.File(t, dir)
	sub := filepath.Join(dir, "callers")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	te := newTestEngine()
	t.Cleanup(func() { te.Close() })
	start := func(clientCA string) (*controlplane.Service, error) {
		return controlplane.NewService(context.Background(), controlplane.Config{
			Listen: "127.0.0.1:0", Engine: te, Admin: "-", RecordingsDir: filepath.Join(dir, "recordings"),
			Logger: testLogger(t), RTPPorts: dataplane.PortRange{Min: 32000, Max: 32999},
			TLSCert: certFile, TLSKey: keyFile, TLSCA: caFile, TLSListen: "127.0.0.1:0", TLSClientCA: clientCA,
		})
	}
	if svc, err := start(filepath.Join(dir, "missing.pem")); err == nil {
		svc.Close()
		t.Fatal("a --tls-client-ca file that does not exist was accepted")
	}
	svc, err := start(callers.File(t, sub))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	addr := svc.Daemon().TLSAddr().String()
	goodCert, goodKey := callers.Issue(t, "127.0.0.1").Files(t, dir, "caller")
	badCert, badKey := other.Issue(t, "127.0.0.1").Files(t, dir, "stranger")

	for _, tc := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"trusted client certificate", []string{"-cert", goodCert, "-key", goodKey}, true},
		{"no client certificate", nil, false},
		{"client certificate of another CA", []string{"-cert", badCert, "-key", badKey}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, complaint := opensslSIP(t, func(ctx context.Context) *exec.Cmd {
				args := append([]string{"s_client", "-connect", addr, "-CAfile", caFile, "-verify_return_error",
					"-verify_ip", "127.0.0.1", "-quiet", "-ign_eof"}, tc.args...)
				return exec.CommandContext(ctx, "openssl", args...)
			}, addr, "127.0.0.1")
			switch {
			case tc.ok && !strings.HasPrefix(status, "SIP/2.0 200"):
				t.Fatalf("trusted caller: answer %q; openssl: %s", status, complaint)
			case !tc.ok && status != "":
				t.Fatalf("caller without a trusted certificate was answered: %q", status)
			case !tc.ok && !strings.Contains(complaint, "alert"):
				t.Fatalf("refusal is not a TLS alert; openssl: %s", complaint)
			}
		})
	}
}
