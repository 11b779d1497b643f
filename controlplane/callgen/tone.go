package callgen

import "math"

// G.711 µ-law (ITU-T G.711 §3) for the demo caller's tones and for reading
// what it hears back.

const ulawBias = 0x84

// LinearToULaw encodes one 16-bit sample as G.711 µ-law.
func LinearToULaw(s int16) byte {
	x := int(s)
	sign := 0
	if x < 0 {
		x, sign = -x, 0x80
	}
	if x > 32635 {
		x = 32635
	}
	x += ulawBias
	exp := 7
	for mask := 0x4000; x&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := (x >> (exp + 3)) & 0x0f
	return ^byte(sign | exp<<4 | mant)
}

// ULawToLinear decodes one G.711 µ-law byte.
func ULawToLinear(u byte) int16 {
	u = ^u
	exp := int(u>>4) & 7
	x := ((int(u&0x0f) << 3) + ulawBias) << exp
	x -= ulawBias
	if u&0x80 != 0 {
		return int16(-x)
	}
	return int16(x)
}

// toneGen produces a sine tone at 8000 Hz, frame by frame, phase-continuous.
type toneGen struct {
	freq  float64
	n     int
	level float64
}

func (g *toneGen) frameULaw(dst []byte) {
	for i := range dst {
		v := g.level * math.Sin(2*math.Pi*g.freq*float64(g.n)/8000)
		g.n++
		dst[i] = LinearToULaw(int16(v))
	}
}

// DominantFreq returns the strongest frequency between 100 and 3500 Hz in
// samples (rate Hz) by a Goertzel scan in 10 Hz steps, and its share of the
// signal's energy (0..1, near 1 for a clean tone).
func DominantFreq(samples []int16, rate int) (float64, float64) {
	if len(samples) < rate/50 {
		return 0, 0
	}
	if len(samples) > rate {
		// One second is plenty for a 10 Hz step and keeps the scan cheap.
		mid := len(samples)/2 - rate/2
		samples = samples[mid : mid+rate]
	}
	var energy float64
	for _, s := range samples {
		energy += float64(s) * float64(s)
	}
	if energy == 0 {
		return 0, 0
	}
	best, bestP := 0.0, 0.0
	for f := 100.0; f <= 3500; f += 10 {
		p := goertzel(samples, f, rate)
		if p > bestP {
			best, bestP = f, p
		}
	}
	// Goertzel power of a pure tone is about (N/2)^2 * A^2/... normalise to
	// the energy so a clean tone reads close to 1.
	share := 2 * bestP / (float64(len(samples)) * energy)
	return best, math.Min(share, 1)
}

func goertzel(samples []int16, freq float64, rate int) float64 {
	w := 2 * math.Pi * freq / float64(rate)
	coeff := 2 * math.Cos(w)
	var s1, s2 float64
	for _, x := range samples {
		s0 := float64(x) + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	return s1*s1 + s2*s2 - coeff*s1*s2
}
