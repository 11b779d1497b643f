package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/emiago/sipgo/sip"
	"github.com/recfork/recfork/siprec/srs"
)

func init() {
	register(command{name: "srs", summary: "run the built-in SIPREC recording server", run: runSRS})
}

const srsUsage = `usage: recforkctl srs --listen ADDR --dir DIR [--media-ip IP] [--rtp-ports MIN-MAX] [--lenient] [--verbose]
                      [--tls-cert FILE --tls-key FILE [--tls-listen ADDR] [--tls-ca FILE] [--tls-client-ca FILE]]

Accepts SIPREC sessions on ADDR (UDP and TCP), and over TLS on --tls-listen when
given a certificate (with --tls-client-ca, only from SRCs whose client
certificate chains to that file: mutual TLS), and writes DIR/<session>/stream<N>.wav (N: the m-line
position), metadata.xml and session.json per session, 0640 in 0750 directories,
until SIGINT or SIGTERM. One line is printed when a session starts and one when
it ends.`

func runSRS(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// sipgo logs transport noise through its process-wide logger; in this
	// process nothing else uses it, so keep it to errors unless asked.
	level := slog.LevelError
	if slices.Contains(args, "--verbose") || slices.Contains(args, "-verbose") {
		level = slog.LevelDebug
	}
	sip.SetDefaultLogger(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})))
	return serveSRS(ctx, args, stdout, stderr)
}

// serveSRS runs the server until ctx ends; exit codes as for every command.
func serveSRS(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("srs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, srsUsage); fs.PrintDefaults() }
	listen := fs.String("listen", "127.0.0.1:5080", "SIP `host:port` for UDP and TCP (port 0 picks one)")
	dir := fs.String("dir", "", "directory for the recordings (required)")
	mediaIP := fs.String("media-ip", "", "RTP address to receive on and advertise (default: the listen host)")
	ports := fs.String("rtp-ports", "", "RTP port range `MIN-MAX` (default 40000-49999)")
	lenient := fs.Bool("lenient", false, "do not record SIPREC rule violations")
	verbose := fs.Bool("verbose", false, "log protocol events to stderr")
	tlsCert := fs.String("tls-cert", "", "PEM certificate for SIP over TLS (with --tls-key)")
	tlsKey := fs.String("tls-key", "", "PEM private key of --tls-cert")
	tlsListen := fs.String("tls-listen", "", "SIP over TLS `host:port` (default: the --listen host, a free port)")
	tlsCA := fs.String("tls-ca", "", "PEM roots the SRC's certificate is verified with when the SRS sends it BYE (default: the system roots)")
	tlsClientCA := fs.String("tls-client-ca", "", "PEM roots an SRC's client certificate must chain to; set, TLS requires one (mutual TLS)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *dir == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "recforkctl srs: --dir is required and no arguments are taken")
		fmt.Fprintln(stderr, srsUsage)
		return 2
	}
	cfg := srs.Config{Listen: *listen, Dir: *dir, Lenient: *lenient}
	if *mediaIP != "" {
		ip, err := netip.ParseAddr(*mediaIP)
		if err != nil {
			fmt.Fprintf(stderr, "recforkctl srs: --media-ip %q: not an IP address\n", *mediaIP)
			return 2
		}
		cfg.MediaIP = ip
	}
	if *ports != "" {
		r, err := parsePortRange(*ports)
		if err != nil {
			fmt.Fprintf(stderr, "recforkctl srs: --rtp-ports: %v\n", err)
			return 2
		}
		cfg.PortRange = r
	}
	if *tlsCert != "" || *tlsKey != "" || *tlsListen != "" || *tlsCA != "" || *tlsClientCA != "" {
		t, err := srsTLS(*tlsCert, *tlsKey, *tlsCA, *tlsClientCA, *tlsListen)
		if err != nil {
			fmt.Fprintf(stderr, "recforkctl srs: %v\n", err)
			return 2
		}
		cfg.TLS = t
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	var outMu sync.Mutex
	cfg.OnSession = func(si srs.SessionInfo) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintln(stdout, sessionLine(si))
	}

	server, err := srs.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "recforkctl srs: %v\n", err)
		return 1
	}
	outMu.Lock()
	fmt.Fprintf(stdout, "srs listening on %s (udp+tcp), recordings in %s\n", server.Addr(), *dir)
	if cfg.TLS != nil {
		fmt.Fprintf(stdout, "srs listening on %s (tls)\n", server.TLSAddr())
	}
	outMu.Unlock()
	if err := server.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "recforkctl srs: %v\n", err)
		return 1
	}
	return 0
}

// srsTLS loads the --tls-* files.
func srsTLS(certFile, keyFile, caFile, clientCAFile, listen string) (*srs.TLS, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert: %w", err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if conf.RootCAs, err = pemPool("--tls-ca", caFile); err != nil {
		return nil, err
	}
	if conf.ClientCAs, err = pemPool("--tls-client-ca", clientCAFile); err != nil {
		return nil, err
	}
	if conf.ClientCAs != nil {
		conf.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return &srs.TLS{Listen: listen, Config: conf}, nil
}

// pemPool reads the certificates of a PEM file named by flag; nil for "".
func pemPool(flag, file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s %s: no PEM certificate in it", flag, file)
	}
	return pool, nil
}

// sessionLine is the one line printed per session start or end.
func sessionLine(si srs.SessionInfo) string {
	var b strings.Builder
	if si.State == srs.StateEnded {
		fmt.Fprintf(&b, "session end   %s reason=%q", si.ID, si.EndReason)
	} else {
		fmt.Fprintf(&b, "session start %s call-id=%q transport=%s", si.ID, si.CallID, si.Transport)
	}
	fmt.Fprintf(&b, " dir=%s", si.Dir)
	for _, st := range si.Streams {
		path := st.Path
		if path == "" {
			path = "-"
		}
		fmt.Fprintf(&b, " [%s %s", st.Label, path)
		if si.State == srs.StateEnded {
			fmt.Fprintf(&b, " packets=%d lost=%d", st.Packets, st.Lost)
		}
		b.WriteString("]")
	}
	if n := len(si.Violations); n > 0 {
		fmt.Fprintf(&b, " violations=%d", n)
	}
	return b.String()
}

func parsePortRange(v string) (srs.PortRange, error) {
	lo, hi, ok := strings.Cut(v, "-")
	if !ok {
		return srs.PortRange{}, fmt.Errorf("%q: want MIN-MAX", v)
	}
	a, err1 := strconv.ParseUint(lo, 10, 16)
	b, err2 := strconv.ParseUint(hi, 10, 16)
	if err1 != nil || err2 != nil || a == 0 || b < a+1 {
		return srs.PortRange{}, fmt.Errorf("%q: want MIN-MAX with 0 < MIN < MAX <= 65535", v)
	}
	return srs.PortRange{Min: uint16(a), Max: uint16(b)}, nil
}
