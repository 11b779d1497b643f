package perf

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

func TestPercentile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3}
	for _, tc := range []struct {
		p, want float64
	}{{0, 1}, {50, 3}, {100, 5}, {25, 2}, {90, 4.6}, {99, 4.96}} {
		t.Run("", func(t *testing.T) {
			if got := Percentile(xs, tc.p); math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
			}
		})
	}
	if !math.IsNaN(Percentile(nil, 50)) {
		t.Error("percentile of nothing is not NaN")
	}
	if xs[0] != 5 {
		t.Error("Percentile sorted its input")
	}
}

func TestStdErr(t *testing.T) {
	if got := StdErr([]float64{2, 4, 4, 4, 5, 5, 7, 9}); math.Abs(got-0.7559289) > 1e-6 {
		t.Errorf("StdErr = %v", got)
	}
	if !math.IsNaN(StdErr([]float64{1})) {
		t.Error("StdErr of one value is not NaN")
	}
}

func TestLossAndPerUnit(t *testing.T) {
	for _, tc := range []struct {
		name           string
		sent, received uint64
		want           float64
	}{
		{"none lost", 1000, 1000, 0},
		{"one in a thousand", 1000, 999, 0.001},
		{"extra counts as none lost", 10, 11, 0},
		{"all lost", 10, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Loss(tc.sent, tc.received); math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("Loss = %v, want %v", got, tc.want)
			}
		})
	}
	if !math.IsNaN(Loss(0, 0)) || !math.IsNaN(PerUnit(1, 0, 0)) {
		t.Error("empty denominators must give NaN")
	}
	if got := PerUnit(3000, 1000, 1000); got != 2 {
		t.Errorf("PerUnit = %v, want 2", got)
	}
}

func TestLadderAndBest(t *testing.T) {
	got := Ladder(25000, 1600000, 2)
	want := []float64{25000, 50000, 100000, 200000, 400000, 800000, 1600000}
	if len(got) != len(want) {
		t.Fatalf("Ladder = %v", got)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("Ladder = %v, want %v", got, want)
		}
	}
	if Ladder(0, 1, 2) != nil || Ladder(1, 2, 1) != nil {
		t.Error("invalid ladders must be empty")
	}
	for _, tc := range []struct {
		step RateStep
		want bool
	}{
		{RateStep{Target: 1000, Achieved: 1000, Out: 1000, Loss: 0}, true},
		{RateStep{Target: 2000, Achieved: 2000, Out: 1990, Loss: 0.0005}, true},
		{RateStep{Target: 4000, Achieved: 4000, Out: 3000, Loss: 0.25}, false},
		{RateStep{Target: 4000, Achieved: 3000, Out: 3000, Loss: 0}, true},
		{RateStep{Target: 4000, Achieved: 0, Out: 0, Loss: math.NaN()}, false},
	} {
		if got := tc.step.Sustained(); got != tc.want {
			t.Errorf("%+v.Sustained() = %v, want %v", tc.step, got, tc.want)
		}
	}
}

func TestResultsCarryEveryKey(t *testing.T) {
	r := NewResults(true)
	r.Set("fork.none.pps", 100000, 3)
	r.Set("fork.ebpf.pps", 50000, 3)
	r.Mark("fork.rtpengine.pps", StatusSkipped, "rtpengine is not installed")
	r.MarkUnset([]string{"fork.ebpf.pps", "fork.ebpf.loss"}, StatusNotMeasured, "boom")
	r.ComputeRatios()
	path := filepath.Join(t.TempDir(), "r.json")
	if err := r.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Metrics map[string]Metric `json:"metrics"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Metrics) != len(Keys) {
		t.Fatalf("%d keys in the file, %d declared", len(doc.Metrics), len(Keys))
	}
	for _, k := range Keys {
		m, ok := doc.Metrics[k.Key]
		if !ok {
			t.Fatalf("key %s missing", k.Key)
		}
		if m.Status == "" || (m.Value == nil) == (m.Status == StatusMeasured) {
			t.Errorf("key %s: status %q with value %v", k.Key, m.Status, m.Value)
		}
	}
	e := doc.Metrics["fork.ebpf.pps"]
	if e.Ratio == nil || *e.Ratio != 0.5 || e.RatioTo != "fork.none.pps" {
		t.Errorf("fork.ebpf.pps ratio = %v to %q, want 0.5 to fork.none.pps", e.Ratio, e.RatioTo)
	}
	if l := doc.Metrics["fork.ebpf.loss"]; l.Status != StatusNotMeasured || l.Reason != "boom" {
		t.Errorf("fork.ebpf.loss = %+v", l)
	}
	if s := doc.Metrics["fork.rtpengine.pps"]; s.Status != StatusSkipped || !strings.Contains(s.Reason, "not installed") {
		t.Errorf("fork.rtpengine.pps = %+v", s)
	}
	// Every key the issue names is declared.
	for _, k := range []string{"bpf.testrun_ns.active", "bpf.testrun_ns.inactive", "bpf.testrun_ns.miss",
		"mute.map_write_us.p50", "mute.map_write_us.p99", "mute.send_to_silence_us.p99",
		"calls.cps", "calls.concurrent", "calls.bytes_per_call", "ccxml.events_per_s", "ccxml.bytes_per_session"} {
		if _, ok := Spec(k); !ok {
			t.Errorf("key %s not declared", k)
		}
	}
	for _, e := range []string{"ebpf", "userspace", "rtpengine", "none", "srtp"} {
		for _, s := range []string{"pps", "cpu_ns_per_copy", "loss"} {
			if _, ok := Spec("fork." + e + "." + s); !ok {
				t.Errorf("key fork.%s.%s not declared", e, s)
			}
		}
	}
	for _, e := range []string{"ebpf", "userspace", "rtpengine"} {
		for _, s := range []string{"pps", "cpu_ns_per_packet", "loss"} {
			if _, ok := Spec("relay." + e + "." + s); !ok {
				t.Errorf("key relay.%s.%s not declared", e, s)
			}
		}
	}
	// Each new figure has a same-run ratio: SRTP to the plain copy of the
	// same engine, the relays to the userspace relay, the guard to the
	// XDP_PASS floor.
	for k, want := range map[string]string{
		"fork.srtp.pps": "fork.userspace.pps", "fork.srtp.cpu_ns_per_copy": "fork.userspace.cpu_ns_per_copy",
		"relay.ebpf.pps": "relay.userspace.pps", "relay.ebpf.cpu_ns_per_packet": "relay.userspace.cpu_ns_per_packet",
		"relay.rtpengine.pps": "relay.userspace.pps", "relay.rtpengine.cpu_ns_per_packet": "relay.userspace.cpu_ns_per_packet",
		"relay.userspace.pps": "fork.none.pps", "relay.userspace.cpu_ns_per_packet": "fork.none.cpu_ns_per_packet",
		"bpf.testrun_ns.guard_drop": "baseline.xdp_pass_ns",
	} {
		if s, _ := Spec(k); s.RatioTo != want {
			t.Errorf("%s ratio to %q, want %q", k, s.RatioTo, want)
		}
	}
}

func TestRelayScenarioNamesItsKeys(t *testing.T) {
	for _, tc := range []struct {
		s    *ForkScenario
		name string
		keys string
	}{
		{&ForkScenario{Engine: "ebpf", Relay: true}, "relay.ebpf", "relay.ebpf.pps relay.ebpf.cpu_ns_per_packet relay.ebpf.loss"},
		{&ForkScenario{Engine: "ebpf"}, "fork.ebpf", "fork.ebpf.pps fork.ebpf.cpu_ns_per_copy fork.ebpf.loss"},
		{&ForkScenario{Engine: "none"}, "fork.none", "fork.none.pps fork.none.cpu_ns_per_copy fork.none.loss fork.none.cpu_ns_per_packet"},
		{&ForkScenario{Engine: "srtp"}, "fork.srtp", "fork.srtp.pps fork.srtp.cpu_ns_per_copy fork.srtp.loss"},
	} {
		if got := tc.s.Name(); got != tc.name {
			t.Errorf("Name = %q, want %q", got, tc.name)
		}
		if got := strings.Join(tc.s.Keys(), " "); got != tc.keys {
			t.Errorf("%s keys = %q, want %q", tc.name, got, tc.keys)
		}
	}
}

func TestReadResultsRoundTrip(t *testing.T) {
	r := NewResults(false)
	r.Set("fork.ebpf.cpu_ns_per_copy", 1234, 12)
	r.SetStdErr("fork.ebpf.cpu_ns_per_copy", 56)
	r.Note("a finding")
	r.Machine.Cores = 2
	path := filepath.Join(t.TempDir(), "r.json")
	if err := r.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	got, err := ReadResults(path)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := got.Value("fork.ebpf.cpu_ns_per_copy"); !ok || v != 1234 {
		t.Errorf("value = %v, %v", v, ok)
	}
	if se, ok := got.StdErrOf("fork.ebpf.cpu_ns_per_copy"); !ok || se != 56 {
		t.Errorf("stderr = %v, %v", se, ok)
	}
	if len(got.Notes) != 1 || got.Machine.Cores != 2 || len(got.Metrics) != len(Keys) {
		t.Errorf("read back %+v", got)
	}
	if _, err := ReadResults(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("missing file read without error")
	}
}

func TestSetRejectsUndeclaredKey(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Set of an undeclared key did not panic")
		}
	}()
	NewResults(false).Set("fork.bogus.pps", 1, 1)
}

func TestScenarioSuiteKeysAreDeclared(t *testing.T) {
	seen := map[string]string{}
	for _, s := range Suite() {
		for _, k := range s.Keys() {
			if _, ok := Spec(k); !ok {
				t.Errorf("scenario %s writes undeclared key %s", s.Name(), k)
			}
			if o, dup := seen[k]; dup {
				t.Errorf("key %s written by %s and %s", k, o, s.Name())
			}
			seen[k] = s.Name()
		}
	}
	for _, k := range Keys {
		if _, ok := seen[k.Key]; !ok {
			t.Errorf("no scenario writes %s", k.Key)
		}
	}
}

type fakeScenario struct {
	name string
	keys []string
	run  func(env *Env) error
}

func (f *fakeScenario) Name() string   { return f.name }
func (f *fakeScenario) Keys() []string { return f.keys }
func (f *fakeScenario) Steps(bool) int { return 1 }
func (f *fakeScenario) Run(_ context.Context, env *Env) error {
	return f.run(env)
}

func TestRunnerMarksOutcomes(t *testing.T) {
	var out bytes.Buffer
	res := NewResults(true)
	r := &Runner{
		Env: &Env{Results: res, Progress: NewProgress(&out), Log: discardLogger()},
		Scenarios: []Scenario{
			&fakeScenario{"ok", []string{"ccxml.events_per_s", "ccxml.bytes_per_session"}, func(env *Env) error {
				env.Results.Set("ccxml.events_per_s", 10, 1)
				return nil
			}},
			&fakeScenario{"skip", []string{"fork.rtpengine.pps"}, func(*Env) error { return Skip("no rtpengine") }},
			&fakeScenario{"fail", []string{"calls.cps"}, func(*Env) error { return errors.New("daemon failed") }},
			&fakeScenario{"panic", []string{"calls.concurrent"}, func(*Env) error { panic("bug") }},
		},
		Budget: func(Scenario) time.Duration { return time.Second },
	}
	r.Run(context.Background())
	for _, tc := range []struct{ key, status, reason string }{
		{"ccxml.events_per_s", StatusMeasured, ""},
		{"ccxml.bytes_per_session", StatusNotMeasured, "scenario ended without measuring this key"},
		{"fork.rtpengine.pps", StatusSkipped, "no rtpengine"},
		{"calls.cps", StatusNotMeasured, "not measured: daemon failed"},
		{"calls.concurrent", StatusNotMeasured, "not measured: scenario panicked: bug"},
		{"mute.map_write_us.p50", StatusNotMeasured, "scenario did not run"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			m := res.Metrics[tc.key]
			if m.Status != tc.status || m.Reason != tc.reason {
				t.Errorf("%s = %q %q, want %q %q", tc.key, m.Status, m.Reason, tc.status, tc.reason)
			}
		})
	}
	if res.Scenarios["skip"].Status != StatusSkipped || res.Scenarios["fail"].Status != StatusNotMeasured {
		t.Errorf("scenario results: %+v", res.Scenarios)
	}
	if !strings.Contains(out.String(), "[##############################] 100%") {
		t.Errorf("no finished progress bar in %q", out.String())
	}
}

func TestTextBar(t *testing.T) {
	for _, tc := range []struct {
		done, total int
		want        string
	}{{0, 4, "[....]"}, {2, 4, "[##..]"}, {4, 4, "[####]"}, {9, 4, "[####]"}, {1, 0, "[####]"}} {
		if got := TextBar(tc.done, tc.total, 4); got != tc.want {
			t.Errorf("TextBar(%d, %d) = %q, want %q", tc.done, tc.total, got, tc.want)
		}
	}
}

func TestForkChartIsValidSVG(t *testing.T) {
	r := NewResults(false)
	r.Set("fork.none.pps", 200000, 1)
	r.Set("fork.ebpf.pps", 150000, 1)
	r.Set("fork.ebpf.cpu_ns_per_copy", 900, 1)
	r.Mark("fork.rtpengine.pps", StatusSkipped, "rtpengine <missing> & more")
	svg := ForkChart(r)
	d := xml.NewDecoder(bytes.NewReader(svg))
	rects, texts := 0, []string{}
	for {
		tok, err := d.Token()
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("invalid SVG: %v\n%s", err, svg)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if el.Name.Local == "rect" {
				rects++
			}
		case xml.CharData:
			texts = append(texts, string(el))
		}
	}
	// Background plus three measured bars.
	if rects != 4 {
		t.Errorf("%d rects, want 4", rects)
	}
	all := strings.Join(texts, "|")
	for _, want := range []string{"200k", "150k", "900", "skipped", "not measured", "ebpf", "rtpengine", "Extra CPU per copy"} {
		if !strings.Contains(all, want) {
			t.Errorf("chart text lacks %q: %s", want, all)
		}
	}
}

func TestReadmeHasTableAndReproduction(t *testing.T) {
	r := NewResults(true)
	r.Set("fork.ebpf.cpu_ns_per_copy", 800, 1)
	r.Set("fork.userspace.cpu_ns_per_copy", 4000, 1)
	r.Mark("fork.rtpengine.cpu_ns_per_copy", StatusSkipped, "a | b")
	path := filepath.Join(t.TempDir(), "README.md")
	if err := WriteReadme(path, r); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	s := string(b)
	for _, want := range []string{"make bench", "make bench-quick", "apt-get install", "| `fork.ebpf.cpu_ns_per_copy` | 800 |",
		"eBPF/userspace 0.20", "target eBPF <= 1/3 of either: met", "a \\| b", "results/fork.svg", "--table=-1"} {
		if !strings.Contains(s, want) {
			t.Errorf("README lacks %q", want)
		}
	}
	for _, k := range Keys {
		if !strings.Contains(s, "`"+k.Key+"`") {
			t.Errorf("README table lacks %s", k.Key)
		}
	}
}

func TestHuman(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{{1234567, "1.23M"}, {45678, "45.7k"}, {950, "950"}, {3.14159, "3.14"}, {0, "0"}, {0.00042, "0.00042"}, {math.NaN(), "-"}} {
		if got := Human(tc.v); got != tc.want {
			t.Errorf("Human(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestParseProcFiles(t *testing.T) {
	if got := ParseSchedstat("123456789 42 7\n"); got != 123456789 {
		t.Errorf("ParseSchedstat = %v", got)
	}
	if got := ParseSchedstat("garbage"); got != 0 {
		t.Errorf("ParseSchedstat(garbage) = %v", got)
	}
	rss, err := ParseVmRSS("Name:\tx\nVmRSS:\t   2048 kB\nThreads: 3\n")
	if err != nil || rss != 2048*1024 {
		t.Errorf("ParseVmRSS = %v, %v", rss, err)
	}
	if _, err := ParseVmRSS("Name: x\n"); err == nil {
		t.Error("ParseVmRSS without VmRSS gave no error")
	}
}

func TestParseSippStat(t *testing.T) {
	csvText := "StartTime;TotalCallCreated;SuccessfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C);\n" +
		"x;10;3;3;0;0;\n" +
		"y;500;10;498;0;2;\n"
	st, err := parseSippStat([]byte(csvText))
	if err != nil || st != (sippStats{Created: 500, Successful: 498, Failed: 2}) {
		t.Fatalf("parseSippStat = %+v, %v", st, err)
	}
	for _, bad := range []string{"", "TotalCallCreated;\n", "A;B\n1;2\n"} {
		if _, err := parseSippStat([]byte(bad)); err == nil {
			t.Errorf("parseSippStat(%q) accepted", bad)
		}
	}
}

func TestTopFunctionsChargesSyscallsToCaller(t *testing.T) {
	fn := func(id uint64, name string) *profile.Function { return &profile.Function{ID: id, Name: name} }
	sys, send, recv, gc := fn(1, "syscall.Syscall6"), fn(2, "github.com/recfork/recfork/dataplane/userspace.(*worker).send"),
		fn(3, "github.com/recfork/recfork/dataplane/userspace.(*worker).recv"), fn(4, "runtime.gcBgMarkWorker")
	loc := func(id uint64, fs ...*profile.Function) *profile.Location {
		l := &profile.Location{ID: id}
		for _, f := range fs {
			l.Line = append(l.Line, profile.Line{Function: f})
		}
		return l
	}
	lSys, lSend, lRecv, lGC := loc(1, sys), loc(2, send), loc(3, recv), loc(4, gc)
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		Sample: []*profile.Sample{
			{Location: []*profile.Location{lSys, lSend}, Value: []int64{6, 600}},
			{Location: []*profile.Location{lRecv}, Value: []int64{3, 300}},
			{Location: []*profile.Location{lGC}, Value: []int64{1, 100}},
		},
	}
	got := topFunctions(p, 2)
	want := []string{"userspace.(*worker).send (syscalls) 60%", "userspace.(*worker).recv 30%"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("topFunctions = %q, want %q", got, want)
	}
}

func TestSummarySaysWhereTheTimeGoes(t *testing.T) {
	r := NewResults(false)
	r.Machine.Cores = 2
	r.Set("fork.none.pps", 100000, 1)
	r.Set("fork.ebpf.pps", 500000, 1)
	r.Set("bpf.testrun_ns.active", 1000, 1)
	r.Set("mute.map_write_us.p99", 16000, 1)
	r.Set("fork.ebpf.cpu_ns_per_copy", 500, 1)
	r.Set("fork.userspace.cpu_ns_per_copy", 1200, 1)
	r.Set("fork.userspace.pps", 100000, 1)
	r.Set("relay.ebpf.pps", 800000, 1)
	r.Set("relay.ebpf.cpu_ns_per_packet", 1500, 1)
	r.Set("relay.userspace.pps", 200000, 1)
	r.Set("relay.userspace.cpu_ns_per_packet", 6000, 1)
	r.Set("fork.srtp.pps", 50000, 1)
	r.Set("fork.srtp.cpu_ns_per_copy", 3000, 1)
	r.Set("baseline.xdp_pass_ns", 20, 1)
	r.Set("bpf.testrun_ns.guard_drop", 98, 1)
	r.Set("bpf.testrun_ns.miss", 139, 1)
	env := &Env{Results: r}
	env.Config("fork.ebpf", map[string]any{"bpf_ingress_ns_per_packet": 1250.0, "bound": BoundLoss,
		"best_cpu_cores": 1.9, "best_cpu_ns_per_out": 3800.0, "forks_per_packet": 2.0})
	env.Config("relay.ebpf", map[string]any{"bpf_ingress_ns_per_packet": 950.0, "bound": BoundLadderTop,
		"best_cpu_ns_per_out": 2400.0})
	env.Config("fork.srtp", map[string]any{"bound": BoundGenerator})
	// The findings are computed from the figures, in the run and when the
	// report is rendered again from the results file.
	path := filepath.Join(t.TempDir(), "r.json")
	if err := r.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	back, err := ReadResults(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, res := range map[string]*Results{"in the run": r, "from the file": back} {
		all := strings.Join(Summary(res), "\n")
		for _, want := range []string{
			// Per copy: 500 > 1200/3 is missed; live program time with the
			// two forks 1250 ns against 950 relaying only: 150 ns a copy,
			// the other 350.
			"target eBPF <= 1/3 of either: missed",
			"150 ns are the TCX ingress program's own live run time for the copy (1250 ns per packet with the forks against 950 ns relaying only, BPF run-time statistics, over the 2 copies a packet makes)",
			"the other 350 ns are spent outside the program",
			// Rate: 500k copies of 250k relayed packets; 3800 ns per copy
			// at the best rate, half of a 2400 ns relayed packet its own;
			// 1 Mpps on 2 cores allows 2000 ns, so it would take 3.8 cores.
			"500k copies/s (relay + both forks: 250k relayed packets/s, each copied for the caller's inbound and the callee's outbound recording); target 1 Mpps: missed. The ladder ended: the next rate tried lost 0.1 % or more.",
			"The kernel relay alone reached 800k pps (relay.ebpf.pps; the highest rate tried was sustained, so this is a lower bound).",
			"was 1.90 of the 2 cores, 3800 ns per copy, of which 1200 ns are the relayed packet's own share (a packet relayed without forks costs 2400 ns, generator included, at the relay's best rate, shared by its 2 copies)",
			"1 Mpps on 2 cores needs at most 2000 ns per copy, all of it included, which at the current cost would take 3.8 cores.",
			"ran 1250 ns per packet with relay and fork in the reference windows (BPF run-time statistics): alone it would fill a core at 800k packets/s.",
			"about 1M copies/s per core",
			"eBPF (in the kernel) 800k pps, 1500 ns of CPU per packet at the reference rate, userspace 200k pps, 6000 ns of CPU per packet at the reference rate; CPU per packet eBPF/userspace 0.25.",
			"The TCX ingress program ran 950 ns per relayed packet",
			"50k copies/s (0.50 of the plain copies' 100k), where the generator reached less than 90 % of the next rate",
			"3000 ns of CPU per copy against 1200 ns for a plain copy: SRTP adds 1800 ns per copy (2.50 times the plain copy)",
			"dropped and counted in 98 ns per packet in a test run (bpf.testrun_ns.guard_drop), 4.9 times the XDP_PASS floor; a packet of no stream takes 139 ns",
			"still running",
		} {
			if !strings.Contains(all, want) {
				t.Errorf("%s: summary lacks %q:\n%s", name, want, all)
			}
		}
		for _, bad := range []string{"eBPF/rtpengine", "rtpengine (userspace)"} {
			if strings.Contains(all, bad) {
				t.Errorf("%s: summary compares with an unmeasured rtpengine (%q):\n%s", name, bad, all)
			}
		}
	}
}

func TestSummaryCopyRateAtTheLadderTop(t *testing.T) {
	r := NewResults(true)
	r.Set("fork.ebpf.pps", 800000, 3)
	(&Env{Results: r}).Config("fork.ebpf", map[string]any{"bound": BoundLadderTop})
	all := strings.Join(Summary(r), "\n")
	want := "target 1 Mpps: not shown, the ladder's highest rate was below it and was sustained. The ladder ended: the highest rate tried was sustained, so this is a lower bound."
	if !strings.Contains(all, want) {
		t.Errorf("summary lacks %q:\n%s", want, all)
	}
}

func TestSummarySaysWhatIsMissing(t *testing.T) {
	r := NewResults(false)
	r.Mark("relay.ebpf.pps", StatusSkipped, "no bpf here")
	all := strings.Join(Summary(r), "\n")
	for _, want := range []string{"Relay of joined pairs: relay.ebpf.pps skipped (no bpf here)",
		"SRTP copies: fork.srtp.pps not measured", "Guard drop: bpf.testrun_ns.guard_drop not measured"} {
		if !strings.Contains(all, want) {
			t.Errorf("summary lacks %q:\n%s", want, all)
		}
	}
}

func FuzzParseProcAndSipp(f *testing.F) {
	f.Add("TotalCallCreated;SuccessfulCall(C);FailedCall(C)\n1;1;0\n")
	f.Add("VmRSS:\t 12 kB\n")
	f.Add("1 2 3\n")
	// Malformed /proc text or sipp statistics give an error or zero, never
	// a panic.
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = parseSippStat([]byte(s))
		if v, err := ParseVmRSS(s); err != nil && v != 0 {
			t.Fatalf("ParseVmRSS returned %d with error %v", v, err)
		}
		if d := ParseSchedstat(s); d < 0 {
			t.Fatalf("ParseSchedstat(%q) = %v", s, d)
		}
	})
}

func TestSummaryWithinNoise(t *testing.T) {
	r := NewResults(false)
	r.Set("fork.ebpf.cpu_ns_per_copy", 2500, 12)
	r.SetStdErr("fork.ebpf.cpu_ns_per_copy", 800)
	r.Set("fork.rtpengine.cpu_ns_per_copy", 6000, 12)
	r.SetStdErr("fork.rtpengine.cpu_ns_per_copy", 900)
	all := strings.Join(Summary(r), "\n")
	for _, want := range []string{"2500 ± 800 ns", "within two standard errors",
		"target eBPF <= 1/3 of either: missed on the point estimate, but within two standard errors"} {
		if !strings.Contains(all, want) {
			t.Errorf("summary lacks %q:\n%s", want, all)
		}
	}
}
