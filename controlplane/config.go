package controlplane

import (
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/siprec"
)

// Config configures a Daemon. The zero value runs: SIP on 127.0.0.1:5060, the
// embedded default app, media on the SIP address, the automatic data-plane
// choice and a built-in SRS writing to ./recordings.
type Config struct {
	// Listen is the SIP address served over UDP and TCP; zero means
	// 127.0.0.1:5060. Port 0 picks a free port (the same one for both).
	Listen string
	// App is the path of the CCXML document started for each new call; empty
	// means the embedded default app (DefaultApp).
	App string
	// MediaIP is the address media endpoints bind and announce in SDP; zero
	// means the host of Listen, or 127.0.0.1 when Listen is a wildcard.
	MediaIP netip.Addr
	// RTPPorts is the range of media ports; zero means dataplane.DefaultPortRange.
	RTPPorts dataplane.PortRange
	// Latch is which source a call's media endpoint may latch to (symmetric
	// RTP); zero is dataplane.LatchAddress: the SDP connection address only.
	Latch dataplane.LatchPolicy
	// Dataplane is "auto", "ebpf" or "userspace"; empty means "auto".
	Dataplane string
	// Ifaces are the media interfaces the eBPF engine attaches to; empty means
	// the interface that owns MediaIP.
	Ifaces []string
	// Engine, if set, is used instead of building one from Dataplane (tests,
	// embedding). The daemon does not close an engine it was given.
	Engine dataplane.Engine
	// Admin is the admin API's unix socket path; empty means DefaultAdminSocket().
	// "-" disables the admin API.
	Admin string
	// SRS is the SIP URI of the recording server the default app records to,
	// or several separated by commas, tried in order (siprec/doc.go, "SRS
	// lists and failover"); empty means a built-in SRS started in-process on
	// MediaIP. These SRSs are probed with OPTIONS (SRSKeepalive).
	SRS string
	// SRSKeepalive is the interval of the OPTIONS probes to each SRS; zero
	// means 10 s, a negative value turns the probes off. With the default
	// SRSKeepaliveFailures, an SRS that dies is left within 2 intervals plus
	// a probe timeout (at most 2 s).
	SRSKeepalive time.Duration
	// SRSKeepaliveFailures is how many probes in a row must fail before an
	// SRS is marked down and its recordings move; zero means 2.
	SRSKeepaliveFailures int
	// SRSTransport forces "udp" or "tcp" toward every SRS (a ;transport=
	// URI parameter still wins); empty lets RFC 3261 §18.1.1 choose.
	SRSTransport string
	// SRSFailoverCodes are the INVITE answers after which the next SRS of a
	// list is tried; nil means 408, 480, 500 and 503.
	SRSFailoverCodes []int
	// RecordingsDir is where the built-in SRS writes; empty means ./recordings.
	RecordingsDir string
	// RecordingsMode is the built-in SRS's file permission (directories add
	// search where it gives read); zero means 0640 (0750 directories).
	RecordingsMode fs.FileMode
	// RecordingsGroup, a name or numeric id, owns the built-in SRS's files;
	// empty leaves the group the kernel gives.
	RecordingsGroup string
	// HTTP is an optional listener for /metrics and the CCXML basichttp and
	// createsession processors; empty means none.
	HTTP string
	// Destination, when set, makes the default app bridge each caller to this
	// SIP URI (createcall + join) instead of echoing the caller's audio.
	Destination string
	// AlertTimeout bounds how long an inbound call may ring waiting for the
	// app's decision; zero means 30 s (then 480).
	AlertTimeout time.Duration
	// DisableDTMF turns off RFC 4733 DTMF detection (connection.signal from
	// telephone-event RTP), which costs a private endpoint per call; zero
	// means enabled. DTMF by SIP INFO is always handled.
	DisableDTMF bool
	// Limits bound calls, INVITE rates, connections, sessions and media
	// silence (limits.go); the zero value means the documented defaults.
	Limits Limits
	// HTTPToken is the bearer token the HTTP listener's state-changing
	// endpoints (basichttp, createsession) require; empty means none, which
	// is refused unless HTTP listens on a loopback address.
	HTTPToken string
	// SessionRoots are the directories (or http:// URL prefixes)
	// createsession may load documents from; empty means the directory of
	// App, and none at all with the embedded app.
	SessionRoots []string
	// TLSCert and TLSKey are PEM files of the certificate recforkd serves
	// SIP over TLS with (calls, the SRC's own listener, the built-in SRS);
	// empty means no TLS at all (tls.go). TLSCA is a PEM file of the roots
	// an SRS's certificate is verified with; empty means the system roots.
	// TLSListen is the calls' TLS address; empty means Listen's host on
	// port 5061.
	TLSCert, TLSKey, TLSCA, TLSListen string
	// TLSClientCA, when set, is a PEM file of the roots a caller's client
	// certificate must chain to: the TLS call listener then requires one
	// (mutual TLS). Plain UDP and TCP are unaffected.
	TLSClientCA string
	// SRSSRTP sends every recording as SRTP (SDES); false means SRTP only
	// toward sips: SRSs.
	SRSSRTP bool
	// CallSRTP is SRTP on calls (srtpcall.go): CallSRTPOff, CallSRTPAccept
	// or CallSRTPRequire; empty means CallSRTPOff.
	CallSRTP string
	// StateRedis is the Redis server ("host:port" or a unix socket path)
	// that recording state is shared through (controlplane/state); empty
	// means none.
	StateRedis string
	// NodeID names this node in the shared state; empty means the host
	// name and the SIP port (DefaultNodeID).
	NodeID string
	// StateHeartbeat is how often the node's heartbeat is refreshed; a node
	// silent for 3 of them is dead. Zero means 1 s.
	StateHeartbeat time.Duration
	// Standby makes the node take over dead nodes' recordings (end them at
	// the SRS); it needs StateRedis.
	Standby bool
	// Logger receives the daemon's structured logs; nil means slog.Default().
	Logger *slog.Logger
}

// DefaultAdminSocket is the admin socket path recforkd and recforkctl agree on
// when none is given: $RECFORK_ADMIN, else /run/recforkd.sock for root, else
// recforkd.sock in $XDG_RUNTIME_DIR (a private directory the session manager
// made), else in recforkd-UID under the temporary directory, a 0700
// directory the daemon creates and whose owner both sides check
// (PrivateAdminDir): another user cannot squat a name in /tmp.
func DefaultAdminSocket() string {
	if p := os.Getenv("RECFORK_ADMIN"); p != "" {
		return p
	}
	if os.Geteuid() == 0 {
		return "/run/recforkd.sock"
	}
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
		return filepath.Join(dir, "recforkd.sock")
	}
	return filepath.Join(os.TempDir(), "recforkd-"+strconv.Itoa(os.Geteuid()), "recforkd.sock")
}

// withDefaults validates cfg and fills in the documented zero values.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:5060"
	}
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return cfg, fmt.Errorf("listen %q: %v: %w", cfg.Listen, err, ErrBadConfig)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return cfg, fmt.Errorf("listen %q: bad port: %w", cfg.Listen, ErrBadConfig)
	}
	if !cfg.MediaIP.IsValid() {
		a, err := netip.ParseAddr(host)
		if err != nil || a.IsUnspecified() {
			a = netip.MustParseAddr("127.0.0.1")
		}
		cfg.MediaIP = a
	}
	if cfg.RTPPorts == (dataplane.PortRange{}) {
		cfg.RTPPorts = dataplane.DefaultPortRange
	}
	if err := cfg.RTPPorts.Validate(); err != nil {
		return cfg, fmt.Errorf("rtp ports: %w", err)
	}
	switch cfg.Dataplane {
	case "":
		cfg.Dataplane = "auto"
	case "auto", "ebpf", "userspace":
	default:
		return cfg, fmt.Errorf("dataplane %q (want auto, ebpf or userspace): %w", cfg.Dataplane, ErrBadConfig)
	}
	if cfg.Admin == "" {
		cfg.Admin = DefaultAdminSocket()
	}
	if cfg.RecordingsDir == "" {
		cfg.RecordingsDir = "recordings"
	}
	if cfg.SRS != "" {
		if _, err := siprec.ParseSRSList(cfg.SRS); err != nil {
			return cfg, fmt.Errorf("srs: %v: %w", err, ErrBadConfig)
		}
	}
	switch cfg.SRSTransport {
	case "", "udp", "tcp", "tls":
	default:
		return cfg, fmt.Errorf("srs transport %q (want udp, tcp or tls): %w", cfg.SRSTransport, ErrBadConfig)
	}
	if cfg.CallSRTP == "" {
		cfg.CallSRTP = CallSRTPOff
	}
	if !validCallSRTP(cfg.CallSRTP) {
		return cfg, fmt.Errorf("call srtp %q (want off, accept or require): %w", cfg.CallSRTP, ErrBadConfig)
	}
	if err := cfg.validateTLS(); err != nil {
		return cfg, err
	}
	if cfg.SRSKeepalive == 0 {
		cfg.SRSKeepalive = 10 * time.Second
	}
	if cfg.SRSKeepaliveFailures < 0 {
		return cfg, fmt.Errorf("srs keepalive failures %d: %w", cfg.SRSKeepaliveFailures, ErrBadConfig)
	}
	if cfg.AlertTimeout <= 0 {
		cfg.AlertTimeout = 30 * time.Second
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.HTTP != "" && cfg.HTTPToken == "" && !loopbackListen(cfg.HTTP) {
		return cfg, fmt.Errorf("http %q: a listener on a non-loopback address needs a token (--http-token): %w", cfg.HTTP, ErrBadConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Standby && cfg.StateRedis == "" {
		return cfg, fmt.Errorf("standby needs the shared state (StateRedis): %w", ErrBadConfig)
	}
	return cfg, nil
}

// ParsePortRange reads "MIN-MAX".
func ParsePortRange(s string) (dataplane.PortRange, error) {
	lo, hi, ok := strings.Cut(s, "-")
	a, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	b, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
	if !ok || err1 != nil || err2 != nil {
		return dataplane.PortRange{}, fmt.Errorf("port range %q (want MIN-MAX): %w", s, ErrBadConfig)
	}
	r := dataplane.PortRange{Min: uint16(a), Max: uint16(b)}
	if err := r.Validate(); err != nil {
		return r, err
	}
	return r, nil
}
