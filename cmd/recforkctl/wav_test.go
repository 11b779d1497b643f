package main

import (
	"encoding/binary"
	"math"
	"testing"
)

// makeWAV builds a 16-bit mono PCM WAV: a tone, a silent gap, the tone again.
func makeWAV(rate int, freq float64, tone1, gap, tone2 float64) []byte {
	var s []int16
	add := func(sec float64, on bool) {
		for i := 0; i < int(sec*float64(rate)); i++ {
			v := 0.0
			if on {
				v = 8000 * math.Sin(2*math.Pi*freq*float64(len(s))/float64(rate))
			}
			s = append(s, int16(v))
		}
	}
	add(tone1, true)
	add(gap, false)
	add(tone2, true)
	data := make([]byte, 2*len(s))
	for i, v := range s {
		binary.LittleEndian.PutUint16(data[2*i:], uint16(v))
	}
	h := make([]byte, 44)
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], uint32(36+len(data)))
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], 1)
	binary.LittleEndian.PutUint16(h[22:], 1)
	binary.LittleEndian.PutUint32(h[24:], uint32(rate))
	binary.LittleEndian.PutUint32(h[28:], uint32(rate*2))
	binary.LittleEndian.PutUint16(h[32:], 2)
	binary.LittleEndian.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], uint32(len(data)))
	return append(h, data...)
}

func TestAnalyseFindsGapAndTone(t *testing.T) {
	cases := []struct {
		name                string
		tone1, gap, tone2   float64
		wantGap, wantActive float64
	}{
		{"muted window", 1, 1.5, 1, 1.5, 2},
		{"no gap", 2, 0, 0, 0, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, rate, err := readWAV(makeWAV(8000, 440, c.tone1, c.gap, c.tone2))
			if err != nil {
				t.Fatal(err)
			}
			r := analyse("x.wav", s, rate, -50)
			if math.Abs(r.GapSeconds-c.wantGap) > 0.05 || math.Abs(r.Active-c.wantActive) > 0.05 {
				t.Fatalf("gap %.2f active %.2f, want %.2f %.2f", r.GapSeconds, r.Active, c.wantGap, c.wantActive)
			}
			if math.Abs(r.ToneHz-440) > 10 {
				t.Fatalf("tone %v", r.ToneHz)
			}
		})
	}
}

func TestReadWAVRejects(t *testing.T) {
	good := makeWAV(8000, 440, 0.1, 0, 0)
	bad8bit := append([]byte(nil), good...)
	binary.LittleEndian.PutUint16(bad8bit[34:], 8)
	for name, b := range map[string][]byte{"empty": nil, "not riff": []byte("RIFX0000WAVE"), "8 bit": bad8bit, "no data": good[:36]} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := readWAV(b); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func FuzzReadWAV(f *testing.F) {
	f.Add(makeWAV(8000, 440, 0.05, 0.02, 0.05))
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, rate, err := readWAV(b)
		if err == nil {
			_ = analyse("f", s, rate, -50)
		}
	})
}
