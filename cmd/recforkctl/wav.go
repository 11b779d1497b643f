package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"github.com/recfork/recfork/controlplane/callgen"
	"io"
	"math"
	"os"
)

func init() {
	register(command{name: "wav", summary: "analyse recorded WAV files: audio, silent gaps, tone", run: runWAV})
}

// wavReport describes one recorded stream's audio.
type wavReport struct {
	File       string  `json:"file"`
	Rate       int     `json:"rate"`
	Seconds    float64 `json:"seconds"`
	Active     float64 `json:"active_seconds"`
	Silent     float64 `json:"silent_seconds"`
	FirstAudio float64 `json:"first_audio"`
	LastAudio  float64 `json:"last_audio"`
	// GapStart and GapSeconds describe the longest silent run between the
	// first and the last audio (a muted window shows up here).
	GapStart   float64 `json:"gap_start"`
	GapSeconds float64 `json:"gap_seconds"`
	ToneHz     float64 `json:"tone_hz"`
	TonePurity float64 `json:"tone_purity"`
}

var errWAV = errors.New("bad wav")

// readWAV reads a PCM 16-bit mono or stereo (first channel) RIFF/WAVE file.
func readWAV(b []byte) ([]int16, int, error) {
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, 0, fmt.Errorf("read wav: not RIFF/WAVE: %w", errWAV)
	}
	var rate, channels, bits int
	var data []byte
	for p := 12; p+8 <= len(b); {
		id := string(b[p : p+4])
		n := int(binary.LittleEndian.Uint32(b[p+4 : p+8]))
		body := b[p+8:]
		if n < 0 || n > len(body) {
			// A writer killed mid-recording leaves a short data chunk: take
			// what is there.
			n = len(body)
		}
		body = body[:n]
		switch id {
		case "fmt ":
			if n < 16 {
				return nil, 0, fmt.Errorf("read wav: fmt chunk of %d bytes: %w", n, errWAV)
			}
			if f := binary.LittleEndian.Uint16(body[0:2]); f != 1 {
				return nil, 0, fmt.Errorf("read wav: format %d is not PCM: %w", f, errWAV)
			}
			channels = int(binary.LittleEndian.Uint16(body[2:4]))
			rate = int(binary.LittleEndian.Uint32(body[4:8]))
			bits = int(binary.LittleEndian.Uint16(body[14:16]))
		case "data":
			data = body
		}
		p += 8 + n + n%2
	}
	if rate <= 0 || rate > 192000 || bits != 16 || channels < 1 || channels > 8 {
		return nil, 0, fmt.Errorf("read wav: rate %d, %d bits, %d channels: %w", rate, bits, channels, errWAV)
	}
	if data == nil {
		return nil, 0, fmt.Errorf("read wav: no data chunk: %w", errWAV)
	}
	frame := 2 * channels
	out := make([]int16, len(data)/frame)
	for i := range out {
		out[i] = int16(binary.LittleEndian.Uint16(data[i*frame:]))
	}
	return out, rate, nil
}

// analyse splits the audio into 20 ms windows and classifies each as silent
// (RMS below threshold) or not.
func analyse(file string, s []int16, rate int, thresholdDBFS float64) wavReport {
	r := wavReport{File: file, Rate: rate, Seconds: float64(len(s)) / float64(rate), FirstAudio: -1, LastAudio: -1}
	win := rate / 50
	if win == 0 {
		return r
	}
	thr := 32768 * math.Pow(10, thresholdDBFS/20)
	nw := len(s) / win
	active := make([]bool, nw)
	for w := 0; w < nw; w++ {
		var sum float64
		for _, x := range s[w*win : (w+1)*win] {
			sum += float64(x) * float64(x)
		}
		active[w] = math.Sqrt(sum/float64(win)) >= thr
	}
	first, last := -1, -1
	for w, a := range active {
		if a {
			if first < 0 {
				first = w
			}
			last = w
			r.Active += 0.02
		}
	}
	r.Silent = float64(nw)*0.02 - r.Active
	if first < 0 {
		return r
	}
	r.FirstAudio, r.LastAudio = float64(first)*0.02, float64(last+1)*0.02
	runStart := -1
	for w := first; w <= last; w++ {
		if !active[w] {
			if runStart < 0 {
				runStart = w
			}
			continue
		}
		if runStart >= 0 {
			if l := float64(w-runStart) * 0.02; l > r.GapSeconds {
				r.GapSeconds, r.GapStart = l, float64(runStart)*0.02
			}
			runStart = -1
		}
	}
	// The tone is measured on the audible windows only, so a long muted
	// window does not hide it.
	var audible []int16
	for w := first; w <= last && len(audible) < rate; w++ {
		if active[w] {
			audible = append(audible, s[w*win:(w+1)*win]...)
		}
	}
	r.ToneHz, r.TonePurity = callgen.DominantFreq(audible, rate)
	r.Active = math.Round(r.Active*100) / 100
	r.Silent = math.Round(r.Silent*100) / 100
	r.TonePurity = math.Round(r.TonePurity*100) / 100
	return r
}

func runWAV(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wav", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	thr := fs.Float64("silence", -50, "RMS level in dBFS below which a 20 ms window is silent")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: recforkctl wav [--json] [--silence DBFS] FILE.wav...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageCode(err)
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	var reps []wavReport
	code := 0
	for _, f := range fs.Args() {
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintf(stderr, "recforkctl wav: %v\n", err)
			code = 1
			continue
		}
		s, rate, err := readWAV(b)
		if err != nil {
			fmt.Fprintf(stderr, "recforkctl wav: %s: %v\n", f, err)
			code = 1
			continue
		}
		reps = append(reps, analyse(f, s, rate, *thr))
	}
	if *asJSON {
		if reps == nil {
			reps = []wavReport{}
		}
		printJSON(stdout, reps)
		return code
	}
	t := newTable("FILE", "SECONDS", "ACTIVE", "FIRST", "LAST", "LONGEST GAP", "TONE")
	for _, r := range reps {
		gap := "-"
		if r.GapSeconds > 0 {
			gap = fmt.Sprintf("%.2fs at %.2fs", r.GapSeconds, r.GapStart)
		}
		t.row(r.File, fmt.Sprintf("%.2f", r.Seconds), fmt.Sprintf("%.2f", r.Active), fmt.Sprintf("%.2f", r.FirstAudio),
			fmt.Sprintf("%.2f", r.LastAudio), gap, fmt.Sprintf("%.0f Hz (%.2f)", r.ToneHz, r.TonePurity))
	}
	t.write(stdout)
	return code
}
