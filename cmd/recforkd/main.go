// Command recforkd is the recfork daemon: it answers SIP calls, runs a CCXML
// session per call and records calls over SIPREC with the data plane.
//
// It runs with no configuration at all; every flag has the same key in an
// optional config file (--config), one "key = value" per line, '#' comments.
// Flags given on the command line win over the file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/recfork/recfork/controlplane"
	"github.com/recfork/recfork/dataplane"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

// options are the daemon's flags, as strings so that the config file and the
// command line share one path.
type options struct {
	fs                                          *flag.FlagSet
	config, listen, app, mediaIP, rtpPorts      string
	dataplane, latch, iface, admin, srs, recDir string
	http, destination, logLevel, logFormat      string
	srsTransport, srsFailover                   string
	recMode, recGroup                           string
	stateRedis, nodeID                          string
	standby                                     bool
	stateHeartbeat                              time.Duration
	srsKeepalive, drainGrace                    time.Duration
	srsKeepaliveFailures                        int
	dtmf                                        bool
	lim                                         limitFlags
	tlsCert, tlsKey, tlsCA, tlsListen           string
	srsSRTP                                     bool
	tlsClientCA                                 string
	callSRTP                                    string
}

// limitFlags are the Limits and the HTTP token settings (controlplane/limits.go
// documents each); a negative number or duration turns a limit off.
type limitFlags struct {
	maxCalls, maxTCP, maxTCPSource, maxHTTP, maxSessions, maxHTTPHeader int
	inviteRate, inviteRateSource                                        float64
	maxHTTPBody                                                         int64
	tcpFirst, tcpIdle, httpRead, mediaTimeout, holdTimeout              time.Duration
	httpToken, httpTokenFile, sessionRoots                              string
}

func (o *options) limitFlagSet() {
	fs, l := o.fs, &o.lim
	fs.IntVar(&l.maxCalls, "max-calls", 1000, "live calls at most (lowered to what the RTP ports and the fd limit hold); over it: 503")
	fs.Float64Var(&l.inviteRate, "max-invite-rate", 100, "new INVITEs per second from all sources (burst twice that); over it: 503")
	fs.Float64Var(&l.inviteRateSource, "max-invite-rate-source", 20, "new INVITEs per second from one source address; over it: 503")
	fs.IntVar(&l.maxTCP, "max-tcp-conns", 512, "SIP TCP connections at most")
	fs.IntVar(&l.maxTCPSource, "max-tcp-conns-source", 32, "SIP TCP connections from one address at most")
	fs.DurationVar(&l.tcpFirst, "tcp-first-read-timeout", 10*time.Second, "a new SIP TCP connection must send within this")
	fs.DurationVar(&l.tcpIdle, "tcp-idle-timeout", 5*time.Minute, "close a SIP TCP connection silent for this long")
	fs.IntVar(&l.maxHTTP, "max-http-conns", 64, "--http connections at most")
	fs.DurationVar(&l.httpRead, "http-read-timeout", 10*time.Second, "bound on reading one HTTP request (idle connections close after 6x)")
	fs.Int64Var(&l.maxHTTPBody, "max-http-body", 64<<10, "HTTP request body bytes at most; over it: 413")
	fs.IntVar(&l.maxHTTPHeader, "max-http-header", 16<<10, "HTTP request header bytes at most; over it: 431")
	fs.IntVar(&l.maxSessions, "max-sessions", 64, "live CCXML sessions started by createsession at most; over it: 429")
	fs.DurationVar(&l.mediaTimeout, "media-timeout", 60*time.Second, "end an established call with BYE after this long without RTP")
	fs.DurationVar(&l.holdTimeout, "hold-timeout", 2*time.Hour, "the media timeout while a call is on hold")
	fs.StringVar(&l.httpToken, "http-token", "", "bearer token for --http's basichttp and createsession (required off loopback; prefer --http-token-file)")
	fs.StringVar(&l.httpTokenFile, "http-token-file", "", "file holding the --http bearer token")
	fs.StringVar(&l.sessionRoots, "session-roots", "", "directories createsession may load from, comma-separated (default: the --app directory)")
}

// apply sets the limits and the token on cfg; zero from a flag becomes -1
// for the durations and counts where zero would mean the default.
func (l *limitFlags) apply(cfg *controlplane.Config) error {
	off := func(v int) int {
		if v == 0 {
			return -1
		}
		return v
	}
	offD := func(v time.Duration) time.Duration {
		if v == 0 {
			return -1
		}
		return v
	}
	offF := func(v float64) float64 {
		if v == 0 {
			return -1
		}
		return v
	}
	cfg.Limits = controlplane.Limits{
		MaxCalls: off(l.maxCalls), InviteRate: offF(l.inviteRate), InviteRatePerSource: offF(l.inviteRateSource),
		MaxTCPConns: off(l.maxTCP), MaxTCPConnsPerSource: off(l.maxTCPSource),
		TCPFirstReadTimeout: offD(l.tcpFirst), TCPIdleTimeout: offD(l.tcpIdle),
		MaxHTTPConns: off(l.maxHTTP), HTTPReadTimeout: offD(l.httpRead), MaxHTTPHeader: off(l.maxHTTPHeader),
		MaxSessions: off(l.maxSessions), MediaTimeout: offD(l.mediaTimeout), HoldTimeout: offD(l.holdTimeout),
	}
	cfg.Limits.MaxHTTPBody = l.maxHTTPBody
	if l.maxHTTPBody == 0 {
		cfg.Limits.MaxHTTPBody = -1
	}
	cfg.HTTPToken = l.httpToken
	if l.httpTokenFile != "" {
		b, err := os.ReadFile(l.httpTokenFile)
		if err != nil {
			return fmt.Errorf("--http-token-file: %w", err)
		}
		cfg.HTTPToken = strings.TrimSpace(string(b))
		if cfg.HTTPToken == "" {
			return fmt.Errorf("--http-token-file %s is empty", l.httpTokenFile)
		}
	}
	for _, r := range strings.Split(l.sessionRoots, ",") {
		if r = strings.TrimSpace(r); r != "" {
			cfg.SessionRoots = append(cfg.SessionRoots, r)
		}
	}
	return nil
}

func newOptions(stderr io.Writer) *options {
	o := &options{fs: flag.NewFlagSet("recforkd", flag.ContinueOnError)}
	fs := o.fs
	fs.SetOutput(stderr)
	fs.StringVar(&o.config, "config", "", "optional config file: the flags below as 'key = value' lines")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:5060", "SIP address (UDP and TCP)")
	fs.StringVar(&o.app, "app", "", "CCXML document started for each new call (default: the embedded app)")
	fs.StringVar(&o.mediaIP, "media-ip", "", "address for media endpoints (default: the --listen host, or 127.0.0.1)")
	fs.StringVar(&o.rtpPorts, "rtp-ports", "20000-29999", "RTP/RTCP port range MIN-MAX")
	fs.StringVar(&o.dataplane, "dataplane", "auto", "media engine: auto, ebpf or userspace")
	fs.StringVar(&o.latch, "latch", "address", "which RTP source a call's media latches to: address (the SDP address, any port), nat (also any first source when the SDP address is private) or off (the SDP address and port only)")
	fs.StringVar(&o.iface, "iface", "", "media interface(s) for the eBPF engine, comma-separated (default: the one owning --media-ip)")
	fs.StringVar(&o.admin, "admin", controlplane.DefaultAdminSocket(), "admin API unix socket ('-' disables)")
	fs.StringVar(&o.srs, "srs", "", "SRS URI the embedded app records to, or several separated by commas tried in order (default: a built-in SRS)")
	fs.DurationVar(&o.srsKeepalive, "srs-keepalive", 10*time.Second, "interval of the OPTIONS probes to each SRS (0 turns them off)")
	fs.IntVar(&o.srsKeepaliveFailures, "srs-keepalive-failures", 2, "failed probes in a row before an SRS is marked down and its recordings move")
	fs.StringVar(&o.srsTransport, "srs-transport", "", "force udp, tcp or tls toward the SRS (default: TCP for large requests, UDP when TCP is refused)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate for SIP over TLS (calls, the recording client, the built-in SRS); with --tls-key turns TLS on")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "PEM roots an SRS's TLS certificate is verified with (default: the system roots)")
	fs.StringVar(&o.tlsClientCA, "tls-client-ca", "", "PEM roots a TLS caller's client certificate must chain to; set, the TLS call listener requires one (mutual TLS)")
	fs.StringVar(&o.callSRTP, "call-srtp", "off", "SRTP on calls (SDES a=crypto): off (RTP/AVP only), accept (answer RTP/SAVP offers with SRTP, plain ones with RTP) or require (SRTP only; outbound calls offer RTP/SAVP)")
	fs.BoolVar(&o.srsSRTP, "srs-srtp", false, "send recordings as SRTP (SDES a=crypto) to every SRS (default: only to sips: SRSs)")
	fs.StringVar(&o.tlsListen, "tls-listen", "", "SIP over TLS address for calls (default: the --listen host, port 5061)")
	fs.StringVar(&o.srsFailover, "srs-failover-codes", "408,480,500,503", "INVITE answers after which the next SRS of the list is tried")
	fs.StringVar(&o.recDir, "recordings", "recordings", "directory of the built-in SRS's files")
	fs.StringVar(&o.recMode, "recordings-mode", "0640", "octal permission of the built-in SRS's files (directories add x where it gives r: 0750)")
	fs.StringVar(&o.recGroup, "recordings-group", "", "group name or id owning the built-in SRS's files (default: the process's)")
	fs.StringVar(&o.http, "http", "", "optional HTTP listener for /metrics and the CCXML basichttp processor")
	fs.StringVar(&o.destination, "destination", "", "SIP URI the embedded app bridges callers to (default: echo)")
	fs.BoolVar(&o.dtmf, "dtmf", true, "detect RFC 4733 DTMF in callers' RTP (connection.signal); costs a port pair per call")
	fs.DurationVar(&o.drainGrace, "drain-grace", 0, "on SIGTERM, refuse new calls (503) and let calls in progress run up to this long before ending them (0: end them at once); a second SIGTERM cuts it short")
	fs.StringVar(&o.stateRedis, "state-redis", "", "Redis (host:port or unix socket path) to share recording state through, so a --standby node can end a dead node's recordings (off by default)")
	fs.StringVar(&o.nodeID, "node-id", "", "this node's name in the shared state (default: host name and SIP port)")
	fs.BoolVar(&o.standby, "standby", false, "watch the other nodes' heartbeats in --state-redis and end a dead node's recordings at the SRS")
	fs.DurationVar(&o.stateHeartbeat, "state-heartbeat", time.Second, "heartbeat interval in --state-redis; a node silent for 3 of them is dead")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "text or json")
	o.limitFlagSet()
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: recforkd [flags]\n\nrecforkd answers SIP calls, runs a CCXML session per call and records calls over SIPREC.\nSIGTERM ends calls and recordings cleanly; SIGHUP reloads the app for new calls.\n\nflags:")
		fs.PrintDefaults()
	}
	return o
}

// parse reads the command line, then the config file for the keys the
// command line did not set.
func (o *options) parse(args []string) error {
	if err := o.fs.Parse(args); err != nil {
		return err
	}
	if o.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", o.fs.Arg(0))
	}
	if o.config == "" {
		return nil
	}
	b, err := os.ReadFile(o.config)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	kv, err := parseConfigFile(b)
	if err != nil {
		return fmt.Errorf("config %s: %w", o.config, err)
	}
	set := map[string]bool{}
	o.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, e := range kv {
		if e.key == "config" || o.fs.Lookup(e.key) == nil {
			return fmt.Errorf("config %s:%d: unknown key %q", o.config, e.line, e.key)
		}
		if set[e.key] {
			continue
		}
		if err := o.fs.Set(e.key, e.value); err != nil {
			return fmt.Errorf("config %s:%d: %s: %w", o.config, e.line, e.key, err)
		}
	}
	return nil
}

type configEntry struct {
	key, value string
	line       int
}

// parseConfigFile reads "key = value" (or "key value") lines; blank lines and
// lines starting with '#' are ignored; values may be double-quoted.
func parseConfigFile(b []byte) ([]configEntry, error) {
	var out []configEntry
	for i, raw := range strings.Split(string(b), "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			k, v, ok = strings.Cut(line, " ")
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || strings.ContainsAny(k, " \t\"") {
			return nil, fmt.Errorf("line %d: want 'key = value'", i+1)
		}
		k = strings.TrimPrefix(strings.TrimPrefix(k, "-"), "-")
		if k == "" {
			return nil, fmt.Errorf("line %d: empty key", i+1)
		}
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		out = append(out, configEntry{key: k, value: v, line: i + 1})
	}
	return out, nil
}

func (o *options) config2() (controlplane.Config, error) {
	var cfg controlplane.Config
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return cfg, fmt.Errorf("--log-level %q: %w", o.logLevel, err)
	}
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, hopts)
	switch o.logFormat {
	case "text":
	case "json":
		h = slog.NewJSONHandler(os.Stderr, hopts)
	default:
		return cfg, fmt.Errorf("--log-format %q: want text or json", o.logFormat)
	}
	cfg.Logger = slog.New(h)
	// sipgo logs malformed datagrams through a package-global logger, one
	// line per datagram: keep that for debugging only, so a flood of bad
	// packets cannot flood the log.
	if level > slog.LevelDebug {
		sip.SetDefaultLogger(slog.New(slog.DiscardHandler))
	} else {
		sip.SetDefaultLogger(cfg.Logger.With("component", "sipgo"))
	}
	cfg.Listen, cfg.App, cfg.Dataplane, cfg.Admin = o.listen, o.app, o.dataplane, o.admin
	cfg.SRS, cfg.RecordingsDir, cfg.HTTP, cfg.Destination = o.srs, o.recDir, o.http, o.destination
	cfg.DisableDTMF = !o.dtmf
	mode, err := strconv.ParseUint(o.recMode, 8, 32)
	if err != nil {
		return cfg, fmt.Errorf("--recordings-mode %q: want an octal permission such as 0640", o.recMode)
	}
	cfg.RecordingsMode, cfg.RecordingsGroup = os.FileMode(mode), o.recGroup
	cfg.TLSCert, cfg.TLSKey, cfg.TLSCA, cfg.TLSListen = o.tlsCert, o.tlsKey, o.tlsCA, o.tlsListen
	cfg.TLSClientCA = o.tlsClientCA
	cfg.SRSSRTP = o.srsSRTP
	cfg.CallSRTP = o.callSRTP
	cfg.StateRedis, cfg.NodeID, cfg.Standby, cfg.StateHeartbeat = o.stateRedis, o.nodeID, o.standby, o.stateHeartbeat
	cfg.SRSKeepalive, cfg.SRSKeepaliveFailures, cfg.SRSTransport = o.srsKeepalive, o.srsKeepaliveFailures, o.srsTransport
	if o.srsKeepalive <= 0 {
		cfg.SRSKeepalive = -1 // off; zero would mean the default
	}
	cfg.SRSFailoverCodes = []int{}
	for _, f := range strings.Split(o.srsFailover, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 300 || n > 699 {
			return cfg, fmt.Errorf("--srs-failover-codes: %q is not a SIP failure code", f)
		}
		cfg.SRSFailoverCodes = append(cfg.SRSFailoverCodes, n)
	}
	if o.mediaIP != "" {
		a, err := netip.ParseAddr(o.mediaIP)
		if err != nil {
			return cfg, fmt.Errorf("--media-ip: %w", err)
		}
		cfg.MediaIP = a
	}
	if err := o.lim.apply(&cfg); err != nil {
		return cfg, err
	}
	if cfg.Latch, err = dataplane.ParseLatchPolicy(o.latch); err != nil {
		return cfg, fmt.Errorf("--latch: %w", err)
	}
	r, err := controlplane.ParsePortRange(o.rtpPorts)
	if err != nil {
		return cfg, fmt.Errorf("--rtp-ports: %w", err)
	}
	cfg.RTPPorts = r
	for _, i := range strings.Split(o.iface, ",") {
		if i = strings.TrimSpace(i); i != "" {
			cfg.Ifaces = append(cfg.Ifaces, i)
		}
	}
	return cfg, nil
}

func run(args []string, stderr io.Writer) int {
	o := newOptions(stderr)
	if err := o.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "recforkd:", err)
		return 2
	}
	cfg, err := o.config2()
	if err != nil {
		fmt.Fprintln(stderr, "recforkd:", err)
		return 2
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sigs)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	svc, err := controlplane.NewService(ctx, cfg)
	if err != nil {
		cfg.Logger.Error("start", "err", err)
		if errors.Is(err, controlplane.ErrBadConfig) {
			return 2
		}
		return 1
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			if err := svc.Reload(); err != nil {
				cfg.Logger.Error("reload app", "err", err)
			}
		}
	}()
	go func() {
		<-sigs
		if o.drainGrace > 0 {
			// A second signal ends the grace at once.
			gctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-sigs:
					cancel()
				case <-gctx.Done():
				}
			}()
			svc.Drain(gctx, o.drainGrace)
			cancel()
		}
		stop()
	}()
	if err := svc.Run(ctx); err != nil {
		cfg.Logger.Error("run", "err", err)
		return 1
	}
	return 0
}
