package perf

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CallsScenario drives recforkd (with the eBPF engine and the built-in SRS,
// each its own process) with sipp as the caller: the highest rate of
// recorded call setups, then a batch of calls held at once for the memory
// per recorded call. The same sipp caller against a sipp UAS is the
// baseline.
type CallsScenario struct{}

func (*CallsScenario) Name() string { return "calls" }
func (*CallsScenario) Keys() []string {
	return []string{"baseline.sipp_uas_cps", "calls.cps", "calls.concurrent", "calls.bytes_per_call"}
}
func (*CallsScenario) Steps(quick bool) int {
	if quick {
		return 4
	}
	return 14
}

// sippUAC is the caller: INVITE with a PCMU offer, ACK, hold, BYE. It sends
// no RTP: the scenario measures call and recording setup, not media.
const sippUAC = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="recforkperf caller">
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
  <recv response="183" optional="true"/>
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

// proc is a child process of the suite: its own process group, killed if
// the suite dies, stopped with SIGINT then SIGKILL.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  *os.File
}

func startProc(cmd *exec.Cmd, logPath string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &proc{cmd: cmd, done: make(chan struct{}), log: f}
	if err := startLocked(cmd, func(err error) { p.err = err; close(p.done) }); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", filepath.Base(cmd.Args[0]), err)
	}
	return p, nil
}

func (p *proc) Pid() int { return p.cmd.Process.Pid }

// Stop interrupts the process (and its group) and waits for it.
func (p *proc) Stop() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	p.log.Close()
}

// Exited reports whether the process has ended.
func (p *proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// buildBinaries builds recforkd and recforkctl from the module the suite
// runs in (incremental: the build cache makes a rebuild a link).
func buildBinaries(ctx context.Context, dir string) (recforkd, recforkctl string, err error) {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+"/", "./cmd/recforkd", "./cmd/recforkctl")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("go build recforkd: %w: %s", err, tail(string(out), 400))
	}
	return filepath.Join(dir, "recforkd"), filepath.Join(dir, "recforkctl"), nil
}

// sippStats are the final counters of a sipp run.
type sippStats struct {
	Created, Successful, Failed int
}

// parseSippStat reads the last line of sipp's -trace_stat CSV.
func parseSippStat(b []byte) (sippStats, error) {
	r := csv.NewReader(bytes.NewReader(b))
	r.Comma = ';'
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return sippStats{}, fmt.Errorf("parse sipp stats: %w", err)
	}
	if len(recs) < 2 {
		return sippStats{}, errors.New("parse sipp stats: no data line")
	}
	head, last := recs[0], recs[len(recs)-1]
	get := func(name string) (int, error) {
		for i, h := range head {
			if h == name && i < len(last) {
				return strconv.Atoi(strings.TrimSpace(last[i]))
			}
		}
		return 0, fmt.Errorf("parse sipp stats: no column %s", name)
	}
	var s sippStats
	var errs []error
	var e error
	s.Created, e = get("TotalCallCreated")
	errs = append(errs, e)
	s.Successful, e = get("SuccessfulCall(C)")
	errs = append(errs, e)
	s.Failed, e = get("FailedCall(C)")
	errs = append(errs, e)
	return s, errors.Join(errs...)
}

// runSipp runs the caller at rate calls/s for n calls holding each hold, in
// the generator namespace, and returns its counters.
func runSipp(ctx context.Context, p *Pair, dir string, rate float64, n int, hold time.Duration, target string) (sippStats, time.Duration, error) {
	scen := filepath.Join(dir, "uac.xml")
	if err := os.WriteFile(scen, fmt.Appendf(nil, sippUAC, hold.Milliseconds()), 0o644); err != nil {
		return sippStats{}, 0, err
	}
	stat := filepath.Join(dir, fmt.Sprintf("stat-%d.csv", time.Now().UnixNano()))
	limit := int(rate*hold.Seconds()*2) + 100
	budget := time.Duration(float64(n)/rate*float64(time.Second)) + hold + 20*time.Second
	cctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	cmd := exec.CommandContext(cctx, "ip", "netns", "exec", p.G.Name, "sipp", "-sf", scen,
		"-i", p.GAddr.String(), "-p", "5070", "-s", "echo", target,
		"-r", strconv.FormatFloat(rate, 'f', 0, 64), "-m", strconv.Itoa(n), "-l", strconv.Itoa(limit),
		"-nostdin", "-timeout", fmt.Sprintf("%ds", int(budget.Seconds())), "-timeout_error",
		"-recv_timeout", "10000", "-trace_stat", "-stf", stat, "-fd", "1")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	start := time.Now()
	out, runErr := cmd.CombinedOutput()
	took := time.Since(start)
	b, err := os.ReadFile(stat)
	if err != nil {
		return sippStats{}, took, fmt.Errorf("sipp left no statistics (%v): %s", runErr, tail(string(out), 300))
	}
	st, err := parseSippStat(b)
	if err != nil {
		return st, took, err
	}
	var ee *exec.ExitError
	if runErr != nil && !(errors.As(runErr, &ee) && ee.ExitCode() == 1) {
		return st, took, fmt.Errorf("sipp: %v: %s", runErr, tail(string(out), 300))
	}
	return st, took, nil
}

// adminClient talks to recforkd's admin API over its unix socket.
func adminClient(sock string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}}
}

// activeRecordings counts recordings whose both directions are active.
func activeRecordings(c *http.Client) (int, error) {
	resp, err := c.Get("http://recforkd/v1/recordings")
	if err != nil {
		return 0, fmt.Errorf("admin api: %w", err)
	}
	defer resp.Body.Close()
	var recs []struct {
		Inbound  string `json:"inbound"`
		Outbound string `json:"outbound"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&recs); err != nil {
		return 0, fmt.Errorf("admin api recordings: %w", err)
	}
	n := 0
	for _, r := range recs {
		if r.Inbound == "active" && r.Outbound == "active" {
			n++
		}
	}
	return n, nil
}

// liveConnections is how many call legs recforkd holds (admin API status).
func liveConnections(c *http.Client) (int, error) {
	resp, err := c.Get("http://recforkd/v1/status")
	if err != nil {
		return 0, fmt.Errorf("admin api: %w", err)
	}
	defer resp.Body.Close()
	var st struct {
		Connections int `json:"connections"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return 0, fmt.Errorf("admin api status: %w", err)
	}
	return st.Connections, nil
}

// settleSRS waits until recforkd holds no call and the SRS's count of
// finished sessions has stopped growing, so that a step of the ladder counts
// its own recordings only: those a failed step left in flight finish late,
// and once were counted in the next step's.
func settleSRS(ctx context.Context, admin *http.Client, srsDir string) {
	_ = waitUntil(ctx, 30*time.Second, func() bool { n, err := liveConnections(admin); return err == nil && n == 0 })
	last := srsSessions(srsDir)
	_ = waitUntil(ctx, 10*time.Second, func() bool {
		if sleepCtx(ctx, 500*time.Millisecond) != nil {
			return true
		}
		n := srsSessions(srsDir)
		same := n == last
		last = n
		return same
	})
}

// adminEngine returns the data-plane engine recforkd runs.
func adminEngine(c *http.Client) string {
	resp, err := c.Get("http://recforkd/v1/stats")
	if err != nil {
		return "unknown"
	}
	defer resp.Body.Close()
	var st struct {
		Engine string `json:"Engine"`
	}
	if json.NewDecoder(resp.Body).Decode(&st) != nil || st.Engine == "" {
		return "unknown"
	}
	return st.Engine
}

// procRun returns the summed run time of a process's threads, in ns.
func procRun(pid int) int64 {
	var total time.Duration
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	for _, t := range tasks {
		total += readSchedstat(t)
	}
	return int64(total)
}

// srsSessions counts the recording sessions the SRS finished.
func srsSessions(dir string) int {
	m, _ := filepath.Glob(filepath.Join(dir, "*", "session.json"))
	return len(m)
}

func (c *CallsScenario) Run(ctx context.Context, env *Env) error {
	if err := needRoot(); err != nil {
		return err
	}
	if _, err := exec.LookPath("sipp"); err != nil {
		return Skip("sipp is not installed (apt-get install sip-tester)")
	}
	rates, stepCalls, hold, held := []float64{100, 200, 400, 800, 1600}, 5.0, 500*time.Millisecond, 2000
	if env.Quick {
		rates, stepCalls, hold, held = []float64{200}, 1.0, 300*time.Millisecond, 100
	}
	dir, err := os.MkdirTemp("", "recforkperf-calls")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	recforkd, recforkctl, err := buildBinaries(ctx, filepath.Join(os.TempDir(), "recforkperf-bin"))
	if err != nil {
		return err
	}
	env.Progress.Step("built recforkd")
	p, err := NewPair()
	if err != nil {
		return err
	}
	defer p.Close()
	target := p.MAddr.String() + ":5060"
	env.Config("calls", map[string]any{"rates": rates, "seconds_per_rate": stepCalls, "hold_ms": hold.Milliseconds(),
		"held_calls": held, "srs": "recforkctl srs (built-in SRS), its own process",
		"caller": "sipp, INVITE/ACK/hold/BYE, no RTP"})

	// The ladder stops at the first rate that fails; in the full run one
	// more rate halfway (geometrically) to it is tried.
	ladder := func(run func(rate float64) (float64, bool, error)) (float64, error) {
		best, lo := 0.0, 0.0
		for _, r := range rates {
			got, ok, err := run(r)
			if err != nil {
				return best, err
			}
			if !ok {
				if lo > 0 && !env.Quick {
					mid := math.Round(math.Sqrt(lo * r))
					if got, ok, err := run(mid); err != nil {
						return best, err
					} else if ok {
						best = max(best, got)
					}
				}
				break
			}
			best, lo = max(best, got), r
		}
		return best, nil
	}

	// Baseline: sipp UAS in the platform's place.
	uas, err := startProc(p.M.Command("sipp", "-sn", "uas", "-i", p.MAddr.String(), "-p", "5060", "-nostdin"),
		filepath.Join(dir, "uas.log"))
	if err != nil {
		return err
	}
	base, err := ladder(func(rate float64) (float64, bool, error) {
		n := int(rate * stepCalls)
		st, _, err := runSipp(ctx, p, dir, rate, n, hold, target)
		env.Progress.Step(fmt.Sprintf("sipp uas at %.0f cps: %d/%d", rate, st.Successful, n))
		if err != nil {
			return 0, false, err
		}
		ok := st.Failed == 0 && st.Successful == n
		return rate, ok, nil
	})
	uas.Stop()
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	if base > 0 {
		env.Results.Set("baseline.sipp_uas_cps", base, 1)
	}

	// recforkd with the built-in SRS.
	srsDir := filepath.Join(dir, "srs")
	srs, err := startProc(p.G.Command(recforkctl, "srs", "--listen", p.GAddr.String()+":5080", "--dir", srsDir,
		"--media-ip", p.GAddr.String(), "--rtp-ports", "20000-59999"), filepath.Join(dir, "srs.log"))
	if err != nil {
		return err
	}
	defer srs.Stop()
	sock := filepath.Join(dir, "admin.sock")
	rfd, err := startProc(p.M.Command(recforkd, "--listen", target, "--media-ip", p.MAddr.String(),
		"--srs", "sip:srs@"+p.GAddr.String()+":5080", "--dataplane", "auto", "--iface", p.MIf,
		"--admin", sock, "--rtp-ports", "20000-59999", "--recordings", filepath.Join(dir, "recordings"),
		"--log-level", "warn",
		// The suite measures capacity: recforkd's admission limits (one
		// source, rates past the defaults) are lifted.
		"--max-calls", "-1", "--max-invite-rate", "-1", "--max-invite-rate-source", "-1", "--media-timeout", "0"),
		filepath.Join(dir, "recforkd.log"))
	if err != nil {
		return err
	}
	defer rfd.Stop()
	admin := adminClient(sock)
	if err := waitUntil(ctx, 15*time.Second, func() bool { _, err := activeRecordings(admin); return err == nil }); err != nil {
		return fmt.Errorf("recforkd did not come up: %s", tail(readFile(filepath.Join(dir, "recforkd.log")), 300))
	}
	engine := adminEngine(admin)
	env.Config("calls", map[string]any{"dataplane": engine + " (recforkd --dataplane auto)"})
	if engine != "ebpf" {
		env.Results.Note("calls: recforkd ran the %s engine (--dataplane auto); the eBPF engine was not available to it", engine)
	}
	// Memory per recorded call first, while recforkd is fresh (a Go heap
	// that grew during the ladder would not shrink back): hold a batch of
	// calls at once.
	rss0, err := ProcRSS(rfd.Pid())
	if err != nil {
		return err
	}
	rate := 200.0
	margin := 3 * time.Second
	if env.Quick {
		rate, margin = 100, time.Second
	}
	holdAll := time.Duration(float64(held)/rate*float64(time.Second)) + margin
	done := make(chan error, 1)
	go func() { _, _, err := runSipp(ctx, p, dir, rate, held, holdAll, target); done <- err }()
	peak, rssPeak := 0, rss0
	deadline := time.Now().Add(holdAll)
	for time.Now().Before(deadline) {
		n, err := activeRecordings(admin)
		if err == nil && n >= peak {
			peak = n
			if r, err := ProcRSS(rfd.Pid()); err == nil {
				rssPeak = max(rssPeak, r)
			}
		}
		if peak >= held {
			break
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	env.Progress.Step(fmt.Sprintf("%d recorded calls at once", peak))
	if err := <-done; err != nil {
		return fmt.Errorf("held calls: %w", err)
	}
	env.Results.Set("calls.concurrent", float64(peak), 1)
	if peak > 0 {
		env.Results.Set("calls.bytes_per_call", float64(rssPeak-rss0)/float64(peak), peak)
		env.Config("calls", map[string]any{"rss_idle_bytes": rss0, "rss_peak_bytes": rssPeak})
	}

	// Recorded call setups per second. Each step also records the CPU that
	// recforkd and the SRS spent per call, which says where a missed rate
	// goes.
	type stepCPU struct {
		Rate              float64 `json:"rate"`
		Answered          int     `json:"answered"`
		Recorded          int     `json:"recorded"`
		RecforkdUsPerCall float64 `json:"recforkd_cpu_us_per_call"`
		SRSUs             float64 `json:"srs_cpu_us_per_call"`
	}
	var cpuSteps []stepCPU
	cps, err := ladder(func(rate float64) (float64, bool, error) {
		n := int(rate * stepCalls)
		settleSRS(ctx, admin, srsDir)
		before := srsSessions(srsDir)
		rfd0, srs0 := procRun(rfd.Pid()), procRun(srs.Pid())
		st, _, err := runSipp(ctx, p, dir, rate, n, hold, target)
		if err != nil {
			return 0, false, err
		}
		// Every recording ends with the call; wait for the SRS to close them.
		_ = waitUntil(ctx, 10*time.Second, func() bool { return srsSessions(srsDir)-before >= st.Successful })
		// More than n would be another step's sessions, which settleSRS
		// rules out; the cap keeps the figure a fraction of this step's.
		recorded := min(srsSessions(srsDir)-before, n)
		sc := stepCPU{Rate: rate, Answered: st.Successful, Recorded: recorded,
			RecforkdUsPerCall: float64(procRun(rfd.Pid())-rfd0) / 1e3 / float64(max(n, 1)),
			SRSUs:             float64(procRun(srs.Pid())-srs0) / 1e3 / float64(max(n, 1))}
		cpuSteps = append(cpuSteps, sc)
		env.Progress.Step(fmt.Sprintf("recforkd at %.0f cps: %d answered, %d recorded of %d", rate, st.Successful, recorded, n))
		ok := st.Failed == 0 && st.Successful == n && recorded >= n*999/1000
		if !ok {
			env.Results.Note("calls: at %.0f calls/s, %d of %d calls answered and %d recorded; CPU per call: recforkd %.0f us, SRS %.0f us (%.0f%% and %.0f%% of a core)",
				rate, st.Successful, n, recorded, sc.RecforkdUsPerCall, sc.SRSUs, sc.RecforkdUsPerCall*rate/1e4, sc.SRSUs*rate/1e4)
		}
		return rate * float64(recorded) / float64(n), ok, nil
	})
	env.Config("calls", map[string]any{"ladder": cpuSteps})
	if err != nil {
		return err
	}
	if cps > 0 {
		env.Results.Set("calls.cps", cps, 1)
	} else {
		env.Results.Mark("calls.cps", StatusNotMeasured, fmt.Sprintf("not one rate of %v calls/s was recorded without failures", rates))
	}
	if rfd.Exited() {
		return fmt.Errorf("recforkd exited during the run: %s", tail(readFile(filepath.Join(dir, "recforkd.log")), 300))
	}
	return nil
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// waitUntil polls cond until it holds or d passes.
func waitUntil(ctx context.Context, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return context.DeadlineExceeded
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}
