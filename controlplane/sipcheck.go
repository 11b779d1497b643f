package controlplane

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

// checkRequest applies the checks every request passes before a handler sees
// it, and returns the refusal (code and reason) or 0. It is strict where a
// request could not be handled correctly and liberal elsewhere:
//
//   - RFC 3261 §8.1.1 makes To, From, CSeq, Call-ID, Max-Forwards and Via
//     mandatory; without To, From, CSeq or Call-ID no dialog or transaction
//     can be matched, so the request is refused with 400 naming the header.
//     A missing Max-Forwards is tolerated (RFC 2543 peers omit it). The raw
//     checks of sipframe.go already answered what lacks a header or has a
//     CSeq that does not parse, on the bytes, before the SIP stack; this
//     is the second line, for what the stack builds or passes on.
//   - The CSeq method must be the request's (§8.1.1.5, §8.2.2.3 spirit).
//   - Max-Forwards 0 is refused with 483 Too Many Hops (§16.3 item 2; a
//     looped or hop-exhausted request must not start a call), except
//     OPTIONS, which §11 lets the recipient answer.
func checkRequest(req *sip.Request) (int, string) {
	if req.Via() == nil {
		return 400, "Missing Via"
	}
	for _, h := range []struct {
		name    string
		present bool
	}{
		{"Call-ID", req.CallID() != nil && strings.TrimSpace(req.CallID().Value()) != ""},
		{"From", req.From() != nil},
		{"To", req.To() != nil},
		{"CSeq", req.CSeq() != nil},
	} {
		if !h.present {
			return 400, "Missing " + h.name
		}
	}
	if m := req.CSeq().MethodName; !strings.EqualFold(string(m), string(req.Method)) {
		return 400, "CSeq Method Mismatch"
	}
	if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 && req.Method != sip.OPTIONS {
		return 483, "Too Many Hops"
	}
	return 0, ""
}
