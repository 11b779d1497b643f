package perf

import (
	"math"
	"slices"
	"time"
)

// Percentile returns the p-th percentile (0..100) of xs by linear
// interpolation between closest ranks; NaN for an empty slice. xs is not
// modified.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 || math.IsNaN(p) {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if p <= 0 {
		return s[0]
	}
	if p >= 100 {
		return s[len(s)-1]
	}
	rank := p / 100 * float64(len(s)-1)
	lo := int(math.Floor(rank))
	hi := int(math.Ceil(rank))
	frac := rank - float64(lo)
	return s[lo] + (s[hi]-s[lo])*frac
}

// Mean returns the arithmetic mean of xs; NaN for an empty slice.
func Mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// StdErr returns the standard error of the mean of xs (sample standard
// deviation over the square root of n); NaN for fewer than two values.
func StdErr(xs []float64) float64 {
	if len(xs) < 2 {
		return math.NaN()
	}
	m := Mean(xs)
	var ss float64
	for _, x := range xs {
		ss += (x - m) * (x - m)
	}
	return math.Sqrt(ss/float64(len(xs)-1)) / math.Sqrt(float64(len(xs)))
}

// Median is Percentile(xs, 50).
func Median(xs []float64) float64 { return Percentile(xs, 50) }

// Micros converts durations to microseconds.
func Micros(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d) / float64(time.Microsecond)
	}
	return out
}

// Loss returns the fraction of sent that was not received, clamped to [0, 1];
// received beyond sent (a duplicate or a packet of an earlier step) counts as
// no loss.
func Loss(sent, received uint64) float64 {
	if sent == 0 {
		return math.NaN()
	}
	if received >= sent {
		return 0
	}
	return float64(sent-received) / float64(sent)
}

// PerUnit returns the extra cost per unit: (with - without) / units. NaN when
// units is zero.
func PerUnit(with, without float64, units uint64) float64 {
	if units == 0 {
		return math.NaN()
	}
	return (with - without) / float64(units)
}

// LossThreshold is the loss under which a rate counts as sustained (0.1 %).
const LossThreshold = 0.001

// RateStep is the outcome of offering one rate.
type RateStep struct {
	Target   float64 `json:"target_pps"`   // offered packets per second
	Achieved float64 `json:"achieved_pps"` // what the generator really sent per second
	Out      float64 `json:"out_pps"`      // delivered per second (copies for fork runs)
	Loss     float64 `json:"loss"`
}

// Sustained reports whether a step counts: loss under the threshold. A step
// where the generator fell short of the offered rate still counts at the
// rate it achieved (Out); the ladder stops there.
func (s RateStep) Sustained() bool {
	return !math.IsNaN(s.Loss) && s.Loss < LossThreshold && s.Out > 0
}

// Ladder returns geometric rates from lo to at most hi, each factor times the
// previous one.
func Ladder(lo, hi, factor float64) []float64 {
	if lo <= 0 || factor <= 1 || hi < lo {
		return nil
	}
	var out []float64
	for r := lo; r <= hi*1.0001; r *= factor {
		out = append(out, math.Round(r))
	}
	return out
}
