package srs

// G.711 expansion (ITU-T G.711 tables 1a and 2a) to 16-bit linear PCM. The
// tables are built once from the segment/step formulas rather than typed in, so
// the test can check them against the formulas at known points.

var (
	ulawTable [256]int16
	alawTable [256]int16
)

func init() {
	for i := range 256 {
		ulawTable[i] = ulawExpand(byte(i))
		alawTable[i] = alawExpand(byte(i))
	}
}

// ulawExpand decodes one µ-law byte. Code words are transmitted inverted; the
// 14-bit magnitude is ((2*mantissa+33) << exponent) - 33, scaled by 4 to 16 bits.
func ulawExpand(b byte) int16 {
	b = ^b
	exp := (b >> 4) & 0x07
	mant := int32(b & 0x0f)
	mag := (((2*mant + 33) << exp) - 33) * 4
	if b&0x80 != 0 {
		return int16(-mag)
	}
	return int16(mag)
}

// alawExpand decodes one A-law byte. Even bits are inverted on the line (XOR
// 0x55); the sign bit set means positive; the 13-bit magnitude is 2*mantissa+1
// in segment 0 and (2*mantissa+33) << (exponent-1) above, scaled by 8 to 16 bits.
func alawExpand(b byte) int16 {
	b ^= 0x55
	exp := (b >> 4) & 0x07
	mant := int32(b & 0x0f)
	var mag int32
	if exp == 0 {
		mag = 2*mant + 1
	} else {
		mag = (2*mant + 33) << (exp - 1)
	}
	mag *= 8
	if b&0x80 != 0 {
		return int16(mag)
	}
	return int16(-mag)
}

// payload types with a static 8 kHz G.711 mapping (RFC 3551 §6).
const (
	ptPCMU = 0
	ptPCMA = 8
)

// decodeG711 appends the linear samples of payload to dst.
func decodeG711(dst []int16, table *[256]int16, payload []byte) []int16 {
	for _, b := range payload {
		dst = append(dst, table[b])
	}
	return dst
}
