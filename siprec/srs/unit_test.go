package srs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWAVHeader(t *testing.T) {
	h := wavHeader(1000)
	want := []byte{
		'R', 'I', 'F', 'F', 0xf4, 0x07, 0, 0, // 36 + 2000
		'W', 'A', 'V', 'E', 'f', 'm', 't', ' ',
		16, 0, 0, 0, 1, 0, 1, 0, // fmt size, PCM, mono
		0x40, 0x1f, 0, 0, 0x80, 0x3e, 0, 0, // 8000 Hz, 16000 bytes/s
		2, 0, 16, 0, 'd', 'a', 't', 'a', // block align, bits
		0xd0, 0x07, 0, 0, // 2000 data bytes
	}
	if !bytes.Equal(h, want) {
		t.Fatalf("header\n got %x\nwant %x", h, want)
	}
}

func TestWAVWriter(t *testing.T) {
	cases := []struct {
		name   string
		writes map[int64][]int16
		want   []int16
	}{
		{"empty", nil, []int16{}},
		{"contiguous", map[int64][]int16{0: {1, 2}, 2: {3}}, []int16{1, 2, 3}},
		{"gap is silence", map[int64][]int16{0: {1}, 4: {-5, 6}}, []int16{1, 0, 0, 0, -5, 6}},
		{"late start", map[int64][]int16{3: {7}}, []int16{0, 0, 0, 7}},
		{"overwrite", map[int64][]int16{0: {1, 1, 1}, 1: {9}}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.wav")
			w, err := createWAV(path)
			if err != nil {
				t.Fatal(err)
			}
			if c.name == "overwrite" {
				// Ordered writes: a reordered packet lands over earlier silence.
				_ = w.writeAt(0, []int16{1, 1, 1})
				_ = w.writeAt(1, []int16{9})
				c.want = []int16{1, 9, 1}
			} else {
				for pos, s := range c.writes {
					if err := w.writeAt(pos, s); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := w.close(); err != nil {
				t.Fatal(err)
			}
			got := readWAV(t, path)
			if len(got) != len(c.want) {
				t.Fatalf("samples %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("samples %v, want %v", got, c.want)
				}
			}
		})
	}
	t.Run("header refreshed while writing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "x.wav")
		w, err := createWAV(path)
		if err != nil {
			t.Fatal(err)
		}
		defer w.close()
		if err := w.writeAt(0, make([]int16, headerEvery+10)); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(path)
		if got := binary.LittleEndian.Uint32(b[40:]); got != 2*(headerEvery+10) {
			t.Fatalf("data size in header %d before close", got)
		}
	})
	t.Run("range", func(t *testing.T) {
		w, err := createWAV(filepath.Join(t.TempDir(), "x.wav"))
		if err != nil {
			t.Fatal(err)
		}
		defer w.close()
		if err := w.writeAt(-1, []int16{1}); !errors.Is(err, ErrWAVRange) {
			t.Fatalf("negative position: %v", err)
		}
		if err := w.writeAt(maxWAVSamples, []int16{1}); !errors.Is(err, ErrWAVRange) {
			t.Fatalf("past 4 GiB: %v", err)
		}
	})
}

// G.711 reference points: the formulas of ITU-T G.711 tables 1a/2a as
// written in the recommendation, scaled to 16 bits, plus end points.
func TestG711(t *testing.T) {
	// Segment origins and step sizes as tabulated in G.711 (µ-law in
	// 14-bit units, A-law in 13-bit units).
	ulawOrigin := [8]int{0, 33, 99, 231, 495, 1023, 2079, 4191}
	alawOrigin := [8]int{1, 33, 66, 132, 264, 528, 1056, 2112}
	alawStep := [8]int{2, 2, 4, 8, 16, 32, 64, 128}
	ulawRef := func(code byte) int {
		c := int(^code)
		seg, step := (c>>4)&7, c&15
		v := ulawOrigin[seg] + step*(2<<seg)
		if c&0x80 != 0 {
			v = -v
		}
		return v * 4
	}
	alawRef := func(code byte) int {
		c := int(code ^ 0x55)
		seg, step := (c>>4)&7, c&15
		v := alawOrigin[seg] + step*alawStep[seg]
		if c&0x80 == 0 {
			v = -v
		}
		return v * 8
	}
	known := []struct {
		table *[256]int16
		code  byte
		want  int16
	}{
		{&ulawTable, 0xff, 0}, {&ulawTable, 0x7f, 0}, {&ulawTable, 0x80, 32124}, {&ulawTable, 0x00, -32124},
		{&ulawTable, 0xfe, 8}, {&ulawTable, 0xef, 132}, {&ulawTable, 0x8f, 16764},
		{&alawTable, 0xd5, 8}, {&alawTable, 0x55, -8}, {&alawTable, 0xaa, 32256}, {&alawTable, 0x2a, -32256},
		{&alawTable, 0xc5, 264}, {&alawTable, 0xf5, 528},
	}
	for _, k := range known {
		if got := k.table[k.code]; got != k.want {
			t.Errorf("code %#02x: %d, want %d", k.code, got, k.want)
		}
	}
	for i := range 256 {
		if got, want := int(ulawTable[i]), ulawRef(byte(i)); got != want {
			t.Errorf("µ-law %#02x: %d, want %d", i, got, want)
		}
		if got, want := int(alawTable[i]), alawRef(byte(i)); got != want {
			t.Errorf("A-law %#02x: %d, want %d", i, got, want)
		}
	}
	// The test encoder round-trips through the decoder within one step.
	for _, x := range []int16{0, 100, -100, 1000, -3000, 20000, -32000} {
		d := ulawTable[ulawEncode(x)]
		if diff := int(d) - int(x); diff < -1024 || diff > 1024 {
			t.Errorf("µ-law round trip %d -> %d", x, d)
		}
	}
}

// trackPacket is one packet fed to a track in tests.
type trackPacket struct {
	ssrc    uint32
	seq     uint16
	ts      uint32
	at      time.Duration // arrival after the test's origin
	wantPos int64         // -1: dropped
}

func TestTrack(t *testing.T) {
	origin := time.Unix(1_000_000, 0)
	cases := []struct {
		name                                     string
		pkts                                     []trackPacket
		lost, dups, late, ssrcChanges, reanchors uint64
	}{
		{"in order", []trackPacket{{1, 10, 1000, 0, 0}, {1, 11, 1160, 20 * time.Millisecond, 160}, {1, 12, 1320, 40 * time.Millisecond, 320}}, 0, 0, 0, 0, 0},
		{"late start by wall clock", []trackPacket{{1, 10, 1000, 100 * time.Millisecond, 800}, {1, 11, 1160, 120 * time.Millisecond, 960}}, 0, 0, 0, 0, 0},
		{"loss leaves a gap", []trackPacket{{1, 10, 1000, 0, 0}, {1, 13, 1480, 60 * time.Millisecond, 480}}, 2, 0, 0, 0, 0},
		{"reorder fills the gap", []trackPacket{{1, 10, 1000, 0, 0}, {1, 12, 1320, 40 * time.Millisecond, 320}, {1, 11, 1160, 41 * time.Millisecond, 160}}, 0, 0, 0, 0, 0},
		{"duplicate", []trackPacket{{1, 10, 1000, 0, 0}, {1, 11, 1160, 20 * time.Millisecond, 160}, {1, 11, 1160, 21 * time.Millisecond, -1}}, 0, 1, 0, 0, 0},
		{"sequence wrap", []trackPacket{{1, 65534, 1000, 0, 0}, {1, 65535, 1160, 20 * time.Millisecond, 160}, {1, 0, 1320, 40 * time.Millisecond, 320}, {1, 2, 1640, 80 * time.Millisecond, 640}}, 1, 0, 0, 0, 0},
		{"timestamp wrap", []trackPacket{{1, 1, 0xffffff00, 0, 0}, {1, 2, 0xffffff00 + 160, 20 * time.Millisecond, 160}, {1, 3, 0x40, 40 * time.Millisecond, 320}}, 0, 0, 0, 0, 0},
		{"pause by timestamp", []trackPacket{{1, 1, 0, 0, 0}, {1, 2, 8160, 1020 * time.Millisecond, 8160}}, 0, 0, 0, 0, 0},
		{"too late", []trackPacket{{1, 500, 0, 0, 0}, {1, 501, 160, 0, 160}, {1, 300, 0, 0, -1}}, 0, 0, 1, 0, 0},
		{"ssrc change re-anchors on arrival", []trackPacket{{1, 10, 1000, 0, 0}, {1, 11, 1160, 20 * time.Millisecond, 160}, {2, 7000, 99999, 500 * time.Millisecond, 4000}, {2, 7001, 99999 + 160, 520 * time.Millisecond, 4160}}, 0, 0, 0, 1, 0},
		{"ssrc change never overlaps", []trackPacket{{1, 10, 1000, 0, 0}, {2, 5, 0, 1 * time.Millisecond, 160}}, 0, 0, 0, 1, 0},
		{"timestamp jump beyond arrival", []trackPacket{{1, 1, 0, 0, 0}, {1, 2, 160 + 8000*3600, 20 * time.Millisecond, 160}}, 0, 0, 0, 0, 1},
		{"stray jump dropped", []trackPacket{{1, 1, 0, 0, 0}, {1, 9000, 160, 20 * time.Millisecond, -1}, {1, 2, 160, 20 * time.Millisecond, 160}}, 0, 0, 1, 0, 0},
		{"restart forward confirmed", []trackPacket{{1, 1, 0, 0, 0}, {1, 9000, 50000, 20 * time.Millisecond, -1}, {1, 9001, 50160, 40 * time.Millisecond, 320}, {1, 9002, 50320, 60 * time.Millisecond, 480}}, 0, 0, 1, 0, 1},
		{"restart backward confirmed", []trackPacket{{1, 30000, 0, 0, 0}, {1, 30001, 160, 20 * time.Millisecond, 160}, {1, 10, 7, 40 * time.Millisecond, -1}, {1, 11, 167, 60 * time.Millisecond, 480}}, 0, 0, 1, 0, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var tr track
			wall := func(at time.Time) int64 { return int64(at.Sub(origin)) * wavRate / int64(time.Second) }
			for i, p := range c.pkts {
				pl := tr.place(p.ssrc, p.seq, p.ts, 160, 160, origin.Add(p.at), wall)
				got := pl.pos
				if !pl.keep {
					got = -1
				}
				if got != p.wantPos {
					t.Fatalf("packet %d (seq %d ts %d): position %d, want %d", i, p.seq, p.ts, got, p.wantPos)
				}
			}
			if tr.lost() != c.lost || tr.duplicates != c.dups || tr.late != c.late || tr.ssrcChanges != c.ssrcChanges || tr.reanchors != c.reanchors {
				t.Fatalf("lost %d dups %d late %d ssrc changes %d reanchors %d; want %d %d %d %d %d",
					tr.lost(), tr.duplicates, tr.late, tr.ssrcChanges, tr.reanchors, c.lost, c.dups, c.late, c.ssrcChanges, c.reanchors)
			}
			if tr.packets != uint64(len(c.pkts)) {
				t.Fatalf("packets %d", tr.packets)
			}
		})
	}
}
