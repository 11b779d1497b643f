//go:build linux

package userspace

import (
	"slices"
	"testing"

	"github.com/recfork/recfork/dataplane"
)

// takeAll draws every pair as bind would, without sockets.
func takeAll(p *portPool) []int {
	var got []int
	for {
		pair, ok := p.pick()
		if !ok {
			return got
		}
		p.used[pair] = true
		got = append(got, pair)
	}
}

func TestPortPoolOrderIsRandom(t *testing.T) {
	r := dataplane.PortRange{Min: 30000, Max: 30127} // 64 pairs
	a, b := newPortPool(r), newPortPool(r)
	da, db := takeAll(&a), takeAll(&b)
	if len(da) != 64 || len(db) != 64 {
		t.Fatalf("drew %d and %d pairs, want 64 each", len(da), len(db))
	}
	sorted := slices.Clone(da)
	slices.Sort(sorted)
	for i, v := range sorted {
		if v != i {
			t.Fatalf("pairs drawn %v: not each pair once", da)
		}
	}
	// A sequential pool hands out 0, 1, 2...; two independently keyed
	// pools agree on the whole order with probability 1/64!.
	if slices.Equal(da, sorted) {
		t.Fatalf("pairs drawn in sequence: %v", da)
	}
	if slices.Equal(da, db) {
		t.Fatalf("two pools drew the same order: %v", da)
	}
}

func TestPortPoolRestsReleasedPairs(t *testing.T) {
	p := newPortPool(dataplane.PortRange{Min: 30000, Max: 30007}) // 4 pairs
	got := takeAll(&p)
	if p.free() != 0 {
		t.Fatalf("free() = %d after drawing all, want 0", p.free())
	}
	// Only one pair free: it is reused, there is no other.
	p.release(got[0])
	if pair, ok := p.pick(); !ok || pair != got[0] {
		t.Fatalf("pick() = %d, %v; want the only free pair %d", pair, ok, got[0])
	}
	p.used[got[0]] = true
	// Free two pairs, the second one just now: with the other one free,
	// the just-freed pair must wait.
	p.release(got[1])
	p.release(got[2]) // got[1] has now rested long enough (a quarter of 4)
	if p.free() != 2 {
		t.Fatalf("free() = %d, want 2", p.free())
	}
	first, _ := p.pick()
	second, _ := p.pick()
	if first != got[1] || second != got[2] {
		t.Fatalf("picked %d then %d; want the rested pair %d before the just-freed %d", first, second, got[1], got[2])
	}
	if _, ok := p.pick(); ok {
		t.Fatal("pick() succeeded with nothing free")
	}
	// Releasing twice frees once.
	p.used[first], p.used[second] = true, true
	p.release(first)
	p.release(first)
	if p.free() != 1 {
		t.Fatalf("free() = %d after a double release, want 1", p.free())
	}
}
