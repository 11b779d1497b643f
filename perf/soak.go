package perf

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The soak: recorded calls with RTP at a steady rate through recforkd (its
// defaults) to the built-in SRS while a hostile generator from a second
// address sends malformed SIP, INVITE bursts over the per-source rate,
// slowloris TCP connections and RTP from wrong sources. At the end the
// daemon must have lost (almost) no recorded copies, failed no call, and
// given back what it held.

// SoakConfig sizes a soak run.
type SoakConfig struct {
	Duration time.Duration // how long sipp places calls
	CPS      float64       // new calls per second
	Hold     time.Duration // each call's length; CPS*Hold calls are up at once
	Logger   *slog.Logger
}

// SoakTolerance is how far a resource may be from its start value at the
// end. Goroutines and descriptors may differ by a few for lazily started
// pools (the HTTP client connection, sipgo's timers); ports and data-plane
// entries must return exactly; RSS may keep what the Go runtime has not yet
// returned to the kernel.
var SoakTolerance = struct {
	Goroutines, FDs, Ports int
	RSSBytes               int64
	LostFraction           float64
}{Goroutines: 16, FDs: 8, Ports: 0, RSSBytes: 96 << 20, LostFraction: 0.001}

// SoakResources is one sample of what recforkd holds.
type SoakResources struct {
	Goroutines int   `json:"goroutines"`
	FDs        int   `json:"fds"`
	UDPPorts   int   `json:"udp_ports"`
	TCPSockets int   `json:"tcp_sockets"`
	Endpoints  int   `json:"dataplane_endpoints"`
	Joins      int   `json:"dataplane_joins"`
	Forks      int   `json:"dataplane_forks"`
	RSSBytes   int64 `json:"rss_bytes"`
}

// SoakResult is what perf/results/soak*.json holds.
type SoakResult struct {
	Started      time.Time      `json:"started"`
	Seconds      float64        `json:"seconds"`
	Engine       string         `json:"engine"`
	EngineNote   string         `json:"engine_note,omitempty"`
	NOFILE       uint64         `json:"nofile"`
	CPS          float64        `json:"cps"`
	HoldSeconds  float64        `json:"hold_seconds"`
	Concurrent   int            `json:"concurrent_calls_target"`
	PeakCalls    int            `json:"peak_calls"`
	Calls        sippStats      `json:"calls"`
	Recorded     int            `json:"recorded_sessions"`
	Copied       uint64         `json:"copies_sent"`
	Received     uint64         `json:"copies_received_by_srs"`
	LostFraction float64        `json:"copies_lost_fraction"`
	Hostile      map[string]int `json:"hostile_sent"`
	Refused      map[string]int `json:"refused_by_daemon"`
	Start        SoakResources  `json:"start"`
	Peak         SoakResources  `json:"peak"`
	End          SoakResources  `json:"end"`
	Tolerance    any            `json:"tolerance"`
	Failures     []string       `json:"failures"`
	DaemonExited bool           `json:"daemon_exited"`
}

// soakUAC is the caller: INVITE, ACK, a µ-law tone for the hold, BYE.
const soakUAC = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="recforksoak caller">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=sipp 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [auto_media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0
]]></send>
  <nop><action><exec rtp_stream="tone.wav,-1,0"/></action></nop>
  <pause milliseconds="%d"/>
  <send retrans="500"><![CDATA[
BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0
]]></send>
  <recv response="200" crlf="true"/>
</scenario>
`

// toneWAV is a µ-law WAV (format 7) of a 440 Hz tone, what rtp_stream plays.
func toneWAV(seconds int) []byte {
	n := 8000 * seconds
	var b bytes.Buffer
	b.WriteString("RIFF")
	_ = binary.Write(&b, binary.LittleEndian, uint32(4+26+8+n))
	b.WriteString("WAVEfmt ")
	_ = binary.Write(&b, binary.LittleEndian, []any{uint32(18), uint16(7), uint16(1), uint32(8000), uint32(8000), uint16(1), uint16(8), uint16(0)})
	b.WriteString("data")
	_ = binary.Write(&b, binary.LittleEndian, uint32(n))
	for i := range n {
		b.WriteByte(muLaw(int16(8000 * math.Sin(2*math.Pi*440*float64(i)/8000))))
	}
	return b.Bytes()
}

// muLaw encodes a sample as G.711 µ-law.
func muLaw(s int16) byte {
	x, sign := int(s), 0
	if x < 0 {
		x, sign = -x, 0x80
	}
	x = min(x, 32635) + 0x84
	exp := 7
	for mask := 0x4000; x&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	return ^byte(sign | exp<<4 | (x>>(exp+3))&0x0f)
}

// soakRTPPorts is recforkd's media range; the wrong-source RTP aims at it.
const soakRTPPorts = "20000-39999"

// hostileAddr is the generator's second address on G's side of the pair:
// its own source, so that the per-source limits it trips are not sipp's.
const hostileAddr = "10.77.0.3"

// RunSoak runs one soak and returns its result; the error is for a run that
// could not be made at all (no root, no sipp), the Failures for a run whose
// checks failed.
func RunSoak(ctx context.Context, cfg SoakConfig) (*SoakResult, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := needRoot(); err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("sipp"); err != nil {
		return nil, fmt.Errorf("sipp is not installed (apt-get install sip-tester): %w", err)
	}
	// The descriptor limit of the shipped systemd unit (LimitNOFILE):
	// the defaults must hold the load within it.
	nofile := RaiseFileLimit(65536)
	res := &SoakResult{Started: time.Now().UTC(), CPS: cfg.CPS, HoldSeconds: cfg.Hold.Seconds(), NOFILE: nofile,
		Concurrent: int(cfg.CPS * cfg.Hold.Seconds()), Hostile: map[string]int{}, Refused: map[string]int{}, Tolerance: SoakTolerance}
	dir, err := os.MkdirTemp("", "recforksoak")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	recforkd, recforkctl, err := buildBinaries(ctx, filepath.Join(os.TempDir(), "recforkperf-bin"))
	if err != nil {
		return nil, err
	}
	p, err := NewPair()
	if err != nil {
		return nil, err
	}
	defer p.Close()
	if _, err := p.G.IP("addr", "add", hostileAddr+"/24", "dev", p.GIf); err != nil {
		return nil, err
	}
	target := p.MAddr.String() + ":5060"
	sock := filepath.Join(dir, "admin.sock")
	recDir := filepath.Join(dir, "recordings")
	httpAddr := p.MAddr.String() + ":9090"
	const token = "soak-token"
	// The built-in SRS runs as its own process (recforkctl srs) beside the
	// callers: recforkd's --dataplane auto then picks the eBPF engine, which
	// cannot copy to an SRS inside its own process, and the soak covers
	// its map entries.
	srs, err := startProc(p.G.Command(recforkctl, "srs", "--listen", p.GAddr.String()+":5080", "--dir", recDir,
		"--media-ip", p.GAddr.String(), "--rtp-ports", "40000-49999"), filepath.Join(dir, "srs.log"))
	if err != nil {
		return nil, err
	}
	defer srs.Stop()
	// recforkd with its defaults: every limit and timeout as shipped.
	rfd, err := startProc(p.M.Command(recforkd, "--listen", target, "--media-ip", p.MAddr.String(),
		"--srs", "sip:srs@"+p.GAddr.String()+":5080",
		"--dataplane", "auto", "--iface", p.MIf, "--admin", sock, "--rtp-ports", soakRTPPorts,
		"--http", httpAddr, "--http-token", token, "--log-level", "warn"),
		filepath.Join(dir, "recforkd.log"))
	if err != nil {
		return nil, err
	}
	defer rfd.Stop()
	admin := adminClient(sock)
	if err := waitUntil(ctx, 15*time.Second, func() bool { _, err := activeRecordings(admin); return err == nil }); err != nil {
		return nil, fmt.Errorf("recforkd did not come up: %s", tail(readFile(filepath.Join(dir, "recforkd.log")), 300))
	}
	res.Engine = adminEngine(admin)
	if res.Engine != "ebpf" {
		// Say why --dataplane auto fell back (recforkd logs it).
		for _, l := range strings.Split(readFile(filepath.Join(dir, "recforkd.log")), "\n") {
			if strings.Contains(strings.ToLower(l), "ebpf") || strings.Contains(l, "data plane") {
				res.EngineNote = tail(l, 300)
				break
			}
		}
	}
	sample := func() (SoakResources, error) { return soakSample(p, rfd.Pid(), httpAddr, admin) }
	if res.Start, err = sample(); err != nil {
		return nil, err
	}
	log.Info("soak start", "engine", res.Engine, "resources", res.Start)

	if err := os.WriteFile(filepath.Join(dir, "tone.wav"), toneWAV(5), 0o644); err != nil {
		return nil, err
	}
	scen := filepath.Join(dir, "uac.xml")
	if err := os.WriteFile(scen, fmt.Appendf(nil, soakUAC, cfg.Hold.Milliseconds()), 0o644); err != nil {
		return nil, err
	}

	hctx, stopHostile := context.WithCancel(ctx)
	var hwg sync.WaitGroup
	hostile := newHostile(p, target, res)
	hostile.start(hctx, &hwg)

	// Watch peaks while sipp runs.
	wctx, stopWatch := context.WithCancel(ctx)
	var wwg sync.WaitGroup
	var peakMu sync.Mutex
	wwg.Add(1)
	go func() {
		defer wwg.Done()
		for wctx.Err() == nil {
			if s, err := sample(); err == nil {
				peakMu.Lock()
				res.Peak = maxResources(res.Peak, s)
				peakMu.Unlock()
			}
			if n, err := activeRecordings(admin); err == nil {
				peakMu.Lock()
				res.PeakCalls = max(res.PeakCalls, n)
				peakMu.Unlock()
			}
			_ = sleepCtx(wctx, time.Second)
		}
	}()

	n := int(cfg.CPS * cfg.Duration.Seconds())
	began := time.Now()
	st, sippErr := runSoakSipp(ctx, p, dir, scen, cfg, n, target)
	res.Calls = st
	stopWatch()
	wwg.Wait()
	stopHostile()
	hwg.Wait()
	hostile.close()
	res.Seconds = time.Since(began).Seconds()
	if sippErr != nil {
		res.Failures = append(res.Failures, "sipp: "+sippErr.Error())
	}
	if st.Failed != 0 || st.Successful != n {
		res.Failures = append(res.Failures, fmt.Sprintf("calls: %d of %d succeeded, %d failed (want all, none)", st.Successful, n, st.Failed))
	}

	// Everything the calls and the generator made must go away: wait for
	// it (the unanswered hostile INVITEs run out their 64*T1), then sample.
	settled := func() bool {
		s, err := sample()
		return err == nil && withinTolerance(res.Start, s) == nil
	}
	_ = waitUntil(ctx, 90*time.Second, settled)
	if res.End, err = sample(); err != nil {
		return res, err
	}
	for _, f := range withinTolerance(res.Start, res.End) {
		res.Failures = append(res.Failures, f)
	}
	_ = waitUntil(ctx, 20*time.Second, func() bool { return srsSessions(recDir) >= st.Successful })
	var stats struct{ CopiedPackets uint64 }
	if err := getJSON(admin, "http://recforkd/v1/stats", &stats); err != nil {
		return res, err
	}
	res.Copied = stats.CopiedPackets
	res.Recorded, res.Received = srsReceived(recDir)
	if res.Copied > 0 && res.Received < res.Copied {
		res.LostFraction = float64(res.Copied-res.Received) / float64(res.Copied)
	}
	if res.Copied == 0 {
		res.Failures = append(res.Failures, "no copies were sent to the srs")
	}
	if res.LostFraction > SoakTolerance.LostFraction {
		res.Failures = append(res.Failures, fmt.Sprintf("copies lost: %.4f%% (want under %.1f%%)", 100*res.LostFraction, 100*SoakTolerance.LostFraction))
	}
	if res.Recorded < st.Successful {
		res.Failures = append(res.Failures, fmt.Sprintf("recorded sessions: %d for %d calls", res.Recorded, st.Successful))
	}
	res.Refused = refusedCounts(p, httpAddr)
	if rfd.Exited() {
		res.DaemonExited = true
		res.Failures = append(res.Failures, "recforkd exited: "+tail(readFile(filepath.Join(dir, "recforkd.log")), 300))
	}
	return res, nil
}

// runSoakSipp runs the caller in the generator namespace, from the pair's
// first address.
func runSoakSipp(ctx context.Context, p *Pair, dir, scen string, cfg SoakConfig, n int, target string) (sippStats, error) {
	stat := filepath.Join(dir, "stat.csv")
	limit := int(cfg.CPS*cfg.Hold.Seconds()*2) + 50
	budget := cfg.Duration + cfg.Hold + 60*time.Second
	cctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	cmd := exec.CommandContext(cctx, "ip", "netns", "exec", p.G.Name, "sipp", "-sf", scen,
		"-i", p.GAddr.String(), "-p", "5070", "-mi", p.GAddr.String(), "-mp", "30000", "-s", "echo", target,
		"-r", strconv.FormatFloat(cfg.CPS, 'f', -1, 64), "-m", strconv.Itoa(n), "-l", strconv.Itoa(limit),
		"-nostdin", "-timeout", fmt.Sprintf("%ds", int(budget.Seconds())), "-timeout_error",
		"-recv_timeout", "10000", "-trace_stat", "-stf", stat, "-fd", "5", "-trace_err")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, runErr := cmd.CombinedOutput()
	b, err := os.ReadFile(stat)
	if err != nil {
		return sippStats{}, fmt.Errorf("sipp left no statistics (%v): %s", runErr, tail(string(out), 300))
	}
	st, err := parseSippStat(b)
	if err != nil {
		return st, err
	}
	if runErr != nil {
		errs, _ := filepath.Glob(filepath.Join(dir, "*errors.log"))
		detail := ""
		if len(errs) > 0 {
			detail = tail(readFile(errs[0]), 300)
		}
		return st, fmt.Errorf("%v: %s %s", runErr, tail(string(out), 200), detail)
	}
	return st, nil
}

// soakSample reads recforkd's resources: goroutines from its /metrics,
// descriptors from /proc, sockets from its namespace's /proc/net tables
// (only recforkd runs in M), data-plane entries from the admin API.
func soakSample(p *Pair, pid int, httpAddr string, admin *http.Client) (SoakResources, error) {
	var s SoakResources
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, fmt.Errorf("read fds: %w", err)
	}
	s.FDs = len(fds)
	s.UDPPorts = countLines(fmt.Sprintf("/proc/%d/net/udp", pid)) + countLines(fmt.Sprintf("/proc/%d/net/udp6", pid))
	s.TCPSockets = countTCP(fmt.Sprintf("/proc/%d/net/tcp", pid)) + countTCP(fmt.Sprintf("/proc/%d/net/tcp6", pid))
	if s.RSSBytes, err = ProcRSS(pid); err != nil {
		return s, err
	}
	var st struct{ Endpoints, Joins, Forks int }
	if err := getJSON(admin, "http://recforkd/v1/stats", &st); err != nil {
		return s, err
	}
	s.Endpoints, s.Joins, s.Forks = st.Endpoints, st.Joins, st.Forks
	m, err := scrapeMetrics(p, httpAddr)
	if err != nil {
		return s, err
	}
	s.Goroutines = int(m["go_goroutines"])
	return s, nil
}

// countLines counts the entries of a /proc/net table (its lines less the
// header).
func countLines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return max(bytes.Count(b, []byte("\n"))-1, 0)
}

// countTCP counts the TCP sockets of a /proc/net table that a process still
// holds: TIME_WAIT (06) entries belong to no one.
func countTCP(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n := 0
	for i, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if i == 0 || len(f) < 4 || f[3] == "06" {
			continue
		}
		n++
	}
	return n
}

func getJSON(c *http.Client, url string, v any) error {
	resp, err := c.Get(url)
	if err != nil {
		return fmt.Errorf("admin api: %w", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("admin api %s: %w", url, err)
	}
	return nil
}

// scrapeMetrics reads recforkd's /metrics (a listener inside M) into a map
// of series to values; the connection is made from inside M.
func scrapeMetrics(p *Pair, addr string) (map[string]float64, error) {
	var c net.Conn
	if err := p.M.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, 5*time.Second)
		return err
	}); err != nil {
		return nil, fmt.Errorf("scrape metrics: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "GET /metrics HTTP/1.1\r\nHost: recforkd\r\nConnection: close\r\n\r\n"); err != nil {
		return nil, fmt.Errorf("scrape metrics: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
			m[l[:i]] = v
		}
	}
	return m, sc.Err()
}

// refusedCounts are recforkd's refusal counters: limits hit and requests
// refused before handling.
func refusedCounts(p *Pair, addr string) map[string]int {
	m, err := scrapeMetrics(p, addr)
	out := map[string]int{}
	if err != nil {
		return out
	}
	for k, v := range m {
		if strings.HasPrefix(k, "recfork_limit_rejections_total") || strings.HasPrefix(k, "recfork_sip_requests_refused_total") {
			out[k] = int(v)
		}
	}
	return out
}

// srsReceived counts the built-in SRS's finished sessions and the RTP
// packets they received.
func srsReceived(dir string) (int, uint64) {
	files, _ := filepath.Glob(filepath.Join(dir, "*", "session.json"))
	var total uint64
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var si struct{ Streams []struct{ Packets uint64 } }
		if json.Unmarshal(b, &si) != nil {
			continue
		}
		for _, st := range si.Streams {
			total += st.Packets
		}
	}
	return len(files), total
}

func maxResources(a, b SoakResources) SoakResources {
	return SoakResources{Goroutines: max(a.Goroutines, b.Goroutines), FDs: max(a.FDs, b.FDs), UDPPorts: max(a.UDPPorts, b.UDPPorts),
		TCPSockets: max(a.TCPSockets, b.TCPSockets), Endpoints: max(a.Endpoints, b.Endpoints), Joins: max(a.Joins, b.Joins),
		Forks: max(a.Forks, b.Forks), RSSBytes: max(a.RSSBytes, b.RSSBytes)}
}

// withinTolerance lists what did not come back to its start value.
func withinTolerance(start, end SoakResources) []string {
	var out []string
	check := func(name string, s, e, tol int) {
		if e > s+tol || e < s-tol {
			out = append(out, fmt.Sprintf("%s: %d at the end, %d at the start (tolerance %d)", name, e, s, tol))
		}
	}
	check("goroutines", start.Goroutines, end.Goroutines, SoakTolerance.Goroutines)
	check("file descriptors", start.FDs, end.FDs, SoakTolerance.FDs)
	check("udp ports", start.UDPPorts, end.UDPPorts, SoakTolerance.Ports)
	check("data-plane endpoints", start.Endpoints, end.Endpoints, 0)
	check("data-plane joins", start.Joins, end.Joins, 0)
	check("data-plane forks", start.Forks, end.Forks, 0)
	if end.RSSBytes > start.RSSBytes+SoakTolerance.RSSBytes {
		out = append(out, fmt.Sprintf("rss: %d MiB at the end, %d MiB at the start (tolerance %d MiB)", end.RSSBytes>>20, start.RSSBytes>>20, SoakTolerance.RSSBytes>>20))
	}
	return out
}

// hostile is the abuse generator. It runs from hostileAddr in G.
type hostile struct {
	p      *Pair
	target string
	res    *SoakResult
	mu     sync.Mutex
	sent   map[string]int
	conns  []net.Conn
	udp    *net.UDPConn
	got503 atomic.Int64
}

func newHostile(p *Pair, target string, res *SoakResult) *hostile {
	return &hostile{p: p, target: target, res: res, sent: map[string]int{}}
}

func (h *hostile) count(k string, n int) {
	h.mu.Lock()
	h.sent[k] += n
	h.mu.Unlock()
}

// dial makes a socket inside G bound to the hostile address.
func (h *hostile) dial(network, to string) (net.Conn, error) {
	var c net.Conn
	err := h.p.G.Do(func() error {
		d := net.Dialer{Timeout: 5 * time.Second}
		if network == "tcp" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(hostileAddr)}
		} else {
			d.LocalAddr = &net.UDPAddr{IP: net.ParseIP(hostileAddr)}
		}
		var err error
		c, err = d.Dial(network, to)
		return err
	})
	return c, err
}

// malformed are requests with a mandatory header missing or spoiled, and
// bytes that are no SIP at all.
func malformed(local, to string, i int) []byte {
	inv := fmt.Sprintf("INVITE sip:x@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-h%d\r\n"+
		"From: <sip:h@%s>;tag=h\r\nTo: <sip:x@%s>\r\nCall-ID: hostile-%d\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
		to, local, i, local, to, i)
	switch i % 8 {
	case 0:
		return []byte(strings.Replace(inv, "CSeq: 1 INVITE\r\n", "", 1))
	case 1:
		return []byte(strings.Replace(inv, "Call-ID: ", "X-Call-ID: ", 1))
	case 2:
		return []byte(strings.Replace(inv, "CSeq: 1 INVITE", "CSeq: x INVITE", 1))
	case 3:
		return []byte(strings.Replace(inv, "Max-Forwards: 70", "Max-Forwards: 0", 1))
	case 4:
		return []byte(inv[:len(inv)/2])
	case 5:
		b := make([]byte, 200)
		for j := range b {
			b[j] = byte(rand.IntN(256))
		}
		return b
	case 6:
		return []byte(strings.Replace(inv, "Via: ", "Vi: ", 1))
	default:
		return []byte(strings.Replace(inv, "Content-Length: 0", "Content-Length: 99999", 1))
	}
}

func (h *hostile) start(ctx context.Context, wg *sync.WaitGroup) {
	loop := func(every time.Duration, fn func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(every)
			defer t.Stop()
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					fn(i)
				}
			}
		}()
	}
	// Every socket closes when the run ends, which also ends its reader.
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, c := range h.conns {
			c.Close()
		}
		if h.udp != nil {
			h.udp.Close()
		}
	}()
	c, err := h.dial("udp", h.target)
	if err == nil {
		h.mu.Lock()
		h.udp = c.(*net.UDPConn)
		h.mu.Unlock()
		wg.Add(1)
		go func() {
			// Count what comes back; the socket closes at the end.
			defer wg.Done()
			buf := make([]byte, 65535)
			for {
				n, err := h.udp.Read(buf)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					continue
				}
				if bytes.HasPrefix(buf[:n], []byte("SIP/2.0 503 ")) {
					h.got503.Add(1)
				}
			}
		}()
		local := h.udp.LocalAddr().String()
		// Malformed SIP, 50 a second.
		loop(20*time.Millisecond, func(i int) {
			if _, err := h.udp.Write(malformed(local, h.target, i)); err == nil {
				h.count("malformed_sip", 1)
			}
		})
		// A burst of 60 unacknowledged INVITEs every 10 s: over the
		// per-source rate (20/s, burst 40), under the overall one.
		loop(10*time.Second, func(i int) {
			for j := range 60 {
				inv := fmt.Sprintf("INVITE sip:x@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-b%d-%d\r\n"+
					"From: <sip:h@%s>;tag=h\r\nTo: <sip:x@%s>\r\nCall-ID: burst-%d-%d\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"+
					"Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s",
					h.target, local, i, j, local, h.target, i, j, len(hostileSDP), hostileSDP)
				if _, err := h.udp.Write([]byte(inv)); err == nil {
					h.count("invite_burst", 1)
				}
				time.Sleep(15 * time.Millisecond) // pacing of the burst, not a wait
			}
		})
	}
	// Slowloris: connections that trickle one header byte every 3 s, and
	// connections that never send; each is reopened when the daemon closes
	// it. 40 of them: over the per-source cap of 32.
	for k := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				c, err := h.dial("tcp", h.target)
				if err != nil {
					_ = sleepCtx(ctx, time.Second)
					continue
				}
				h.mu.Lock()
				if ctx.Err() != nil {
					h.mu.Unlock()
					c.Close()
					return
				}
				h.conns = append(h.conns, c)
				h.mu.Unlock()
				h.count("slowloris_connections", 1)
				if k%4 != 0 {
					_, _ = c.Write([]byte("INVITE sip:x SIP/2.0\r\nVia: "))
				}
				for ctx.Err() == nil {
					if k%4 != 0 {
						if _, err := c.Write([]byte("a")); err != nil {
							break
						}
					}
					_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
					if _, err := c.Read(make([]byte, 1)); err != nil {
						if ne, ok := err.(net.Error); ok && ne.Timeout() {
							continue
						}
						break // closed by the daemon
					}
				}
				c.Close()
				// Pacing: a refused connection is retried a second later,
				// as a patient attacker would, not in a tight loop.
				_ = sleepCtx(ctx, time.Second)
			}
		}()
	}
	// RTP from a wrong source to random ports of the media range, 200 a
	// second: whatever lands on a live call's port must not be taken for
	// its caller.
	var u *net.UDPConn
	err = h.p.G.Do(func() error {
		var err error
		u, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(hostileAddr)})
		return err
	})
	if err == nil {
		wg.Add(1)
		go func() { <-ctx.Done(); u.Close(); wg.Done() }()
		pkt := make([]byte, 172)
		pkt[0], pkt[1] = 0x80, 0
		var seq uint16
		loop(5*time.Millisecond, func(i int) {
			seq++
			binary.BigEndian.PutUint16(pkt[2:], seq)
			port := 20000 + 2*rand.IntN(10000)
			to := &net.UDPAddr{IP: h.p.MAddr, Port: port}
			if _, err := u.WriteToUDP(pkt, to); err == nil {
				h.count("wrong_source_rtp", 1)
			}
		})
	}
}

// hostileSDP offers media at the hostile address.
var hostileSDP = "v=0\r\no=- 1 1 IN IP4 " + hostileAddr + "\r\ns=-\r\nc=IN IP4 " + hostileAddr + "\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"

// close stores the generator's counts once it has stopped.
func (h *hostile) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, v := range h.sent {
		h.res.Hostile[k] = v
	}
	// 503 datagrams, retransmissions (Timer G) included.
	h.res.Hostile["invite_burst_503_datagrams"] = int(h.got503.Load())
}
