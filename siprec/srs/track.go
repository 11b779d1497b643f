package srs

import "time"

// track places the RTP packets of one stream on the session's sample
// timeline. It unwraps sequence numbers and timestamps (RFC 3550 §A.1), keeps
// a window of seen sequence numbers for duplicates and reordering, counts
// losses per SSRC epoch, and re-anchors on an SSRC change or an impossible
// jump. It is not safe for concurrent use; the stream serialises calls.
type track struct {
	started   bool
	ssrc      uint32
	anchorPos int64 // timeline position (samples) of anchorTS
	anchorTS  int64 // extended timestamp the anchor refers to
	maxTS     int64 // highest extended timestamp of this epoch
	baseSeq   int64 // first extended sequence number of this epoch
	maxSeq    int64 // highest extended sequence number of this epoch
	received  uint64
	lostPrev  uint64 // losses of earlier epochs
	seen      [seqWindow / 64]uint64
	lastWall  time.Time // arrival of the newest packet
	badSeq    uint16    // sequence number that confirms a restart
	hasBad    bool
	end       int64 // end of the highest placed packet (samples)

	packets, bytes, duplicates, late uint64
	ssrcChanges, reanchors           uint64
	firstArrival, lastArrival        time.Time
	startPos                         int64 // position of the very first packet
}

const (
	seqWindow = 1024 // sequence numbers remembered for duplicate detection
	// maxMisorder is how far behind the newest packet a packet may arrive and
	// still be placed (RFC 3550 §A.1 uses 100); further is a stray or a
	// restart.
	maxMisorder = 100
	// maxDropout is the sequence jump treated as a restart (RFC 3550 §A.1).
	maxDropout = 3000
	// jumpSlack is how far the RTP clock may run ahead of the arrival clock
	// before the timestamps are distrusted and the stream re-anchored by
	// arrival time; senders that pace faster than real time stay well inside.
	jumpSlack = 10 * time.Second
	// maxLate bounds how far before the newest audio a late packet may land.
	maxLate = 2 * wavRate
)

// placement is where one packet goes.
type placement struct {
	pos  int64 // first sample position
	keep bool  // false: duplicate or too late, write nothing
}

// place accounts for one packet and returns its timeline position. wallPos
// maps an arrival time to a session timeline position; samples is the packet's
// duration in samples (0 when unknown).
func (t *track) place(ssrc uint32, seq uint16, ts uint32, payloadLen int, samples int, arrival time.Time, wallPos func(time.Time) int64) placement {
	t.packets++
	t.bytes += uint64(payloadLen)
	if t.firstArrival.IsZero() {
		t.firstArrival = arrival
	}
	t.lastArrival = arrival

	if !t.started || ssrc != t.ssrc {
		if t.started {
			t.ssrcChanges++
		}
		pos := t.newEpoch(ssrc, seq, ts, arrival, wallPos)
		if t.packets == 1 {
			t.startPos = pos
		}
		return t.finish(pos, samples, arrival)
	}

	d := int64(int16(seq - uint16(t.maxSeq)))
	ext := t.maxSeq + d
	switch {
	case d > maxDropout || -d > maxMisorder:
		// RFC 3550 §A.1: a big jump is a stray packet unless the next one
		// follows it; then the sender restarted with the same SSRC (a
		// translator switching sources does that) and the stream re-anchors.
		if t.hasBad && seq == t.badSeq {
			t.hasBad = false
			t.reanchors++
			return t.finish(t.newEpoch(ssrc, seq, ts, arrival, wallPos), samples, arrival)
		}
		t.hasBad, t.badSeq = true, seq+1
		t.late++
		return placement{}
	case d > 0:
		if d >= seqWindow {
			t.seen = [seqWindow / 64]uint64{}
		} else {
			for s := t.maxSeq + 1; s <= ext; s++ {
				t.clearSeen(s)
			}
		}
		t.maxSeq = ext
	case t.isSeen(ext):
		t.duplicates++
		return placement{}
	}
	t.markSeen(ext)
	t.received++

	dt := int64(int32(ts - uint32(t.maxTS)))
	extTS := t.maxTS + dt
	if d > 0 {
		wallGap := int64(arrival.Sub(t.lastWall) * wavRate / time.Second)
		if dt > wallGap+int64(jumpSlack*wavRate/time.Second) || dt < -maxLate {
			// The clock jumped where the packets did not: trust arrival.
			t.reanchors++
			t.anchorPos = max(wallPos(arrival), t.end)
			t.anchorTS = int64(ts)
			t.maxTS = int64(ts)
			return t.finish(t.anchorPos, samples, arrival)
		}
		if dt > 0 {
			t.maxTS = extTS
		}
	}
	pos := t.anchorPos + (extTS - t.anchorTS)
	if pos < 0 || pos < t.end-maxLate {
		t.late++
		return placement{}
	}
	return t.finish(pos, samples, arrival)
}

func (t *track) finish(pos int64, samples int, arrival time.Time) placement {
	if arrival.After(t.lastWall) {
		t.lastWall = arrival
	}
	if e := pos + int64(samples); e > t.end {
		t.end = e
	}
	return placement{pos: pos, keep: true}
}

// newEpoch starts counting a new SSRC (or a restarted one) and anchors its
// first packet: by arrival time on the session timeline, never before audio
// already placed.
func (t *track) newEpoch(ssrc uint32, seq uint16, ts uint32, arrival time.Time, wallPos func(time.Time) int64) int64 {
	if t.started {
		t.lostPrev += t.epochLost()
	}
	pos := wallPos(arrival)
	if pos < t.end {
		pos = t.end
	}
	if pos < 0 {
		pos = 0
	}
	t.started = true
	t.ssrc = ssrc
	t.anchorPos = pos
	t.anchorTS = int64(ts)
	t.maxTS = int64(ts)
	t.baseSeq = int64(seq)
	t.maxSeq = int64(seq)
	t.received = 1
	t.seen = [seqWindow / 64]uint64{}
	t.markSeen(t.maxSeq)
	t.hasBad = false
	return pos
}

func (t *track) epochLost() uint64 {
	expected := t.maxSeq - t.baseSeq + 1
	if l := expected - int64(t.received); l > 0 {
		return uint64(l)
	}
	return 0
}

// lost is the RFC 3550 §A.3 cumulative loss over all epochs (never negative).
func (t *track) lost() uint64 {
	if !t.started {
		return 0
	}
	return t.lostPrev + t.epochLost()
}

func (t *track) markSeen(s int64)  { i := uint64(s) % seqWindow; t.seen[i/64] |= 1 << (i % 64) }
func (t *track) clearSeen(s int64) { i := uint64(s) % seqWindow; t.seen[i/64] &^= 1 << (i % 64) }
func (t *track) isSeen(s int64) bool {
	i := uint64(s) % seqWindow
	return t.seen[i/64]&(1<<(i%64)) != 0
}
