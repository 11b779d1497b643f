package callgen

import (
	"math"
	"testing"
)

func TestULawRoundTrip(t *testing.T) {
	for _, v := range []int16{0, 1, -1, 100, -100, 1000, -1000, 8000, -8000, 32000, -32000, math.MaxInt16, math.MinInt16} {
		got := ULawToLinear(LinearToULaw(v))
		diff := math.Abs(float64(got) - float64(v))
		// µ-law keeps about 4 significant bits of mantissa: error under 1/16
		// of the magnitude plus the bias step.
		if diff > math.Abs(float64(v))/16+40 {
			t.Errorf("%d -> %d (diff %.0f)", v, got, diff)
		}
	}
}

func TestDominantFreq(t *testing.T) {
	for _, f := range []float64{440, 880, 1000} {
		t.Run("", func(t *testing.T) {
			g := toneGen{freq: f, level: 8000}
			buf := make([]byte, 8000)
			g.frameULaw(buf)
			s := make([]int16, len(buf))
			for i, b := range buf {
				s[i] = ULawToLinear(b)
			}
			got, share := DominantFreq(s, 8000)
			if math.Abs(got-f) > 10 || share < 0.5 {
				t.Fatalf("tone %v: got %v share %.2f", f, got, share)
			}
		})
	}
	if f, _ := DominantFreq(make([]int16, 8000), 8000); f != 0 {
		t.Fatalf("silence has frequency %v", f)
	}
}
