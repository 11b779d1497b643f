package controlplane

import (
	"errors"
	"strings"
	"syscall"

	"github.com/emiago/sipgo/sip"
)

// Reflection bound. A UDP source is unverified until it shows it receives
// what the daemon sends (the ACK of a final response): its address may be
// forged, and whatever is sent goes to whoever owns it. One INVITE from
// such a source draws at most:
//
//   - no 100 Trying (RFC 3261 §17.2.1 asks for one only when the final
//     answer takes over 200 ms; the provisional below serves), and at most
//     one provisional response, never retransmitted (RFC 3262 reliability
//     is not offered);
//   - the final response and its retransmissions as RFC 3261 allows and no
//     more: for a 2xx the §13.3.1.4 schedule over 64*T1 (the stack sends at
//     0, T1, then every T2: 10 datagrams at the default T1 = 500 ms, T2 = 4 s;
//     §13.3.1.4's own doubling schedule would be 11), for a failure Timer G
//     until Timer H (11);
//   - no BYE. §13.3.1.4 says the session SHOULD end with a BYE when no
//     ACK came in 64*T1; to a source that never acknowledged anything that
//     BYE (and its own Timer E retransmissions) would only reach a forged
//     address, so the call ends locally instead.
//
// So at most 1 + 11 datagrams, where the daemon of before sent 14 (and,
// with the BYE's retransmissions not cut short, 21). The hostile suite
// counts them over a real socket (TestHostileReflection).

// maxReflected is the bound above, in datagrams, for tests and docs.
const maxReflected = 12

// byeWithoutAck says whether a call whose 2xx was never acknowledged gets
// a BYE: only over a connection-oriented transport, where the peer's
// address is proven by the handshake.
func byeWithoutAck(req *sip.Request) bool {
	return !strings.EqualFold(req.Transport(), "udp")
}

// answerCause names why a final response could not be sent at all, for the
// log line that says why a call was refused; "" when it was sent and the
// call ended for another reason. RFC 3261 §18.2.2 sends a response back
// over the transport of its request, with no fallback to TCP, so an answer
// over UDP larger than a datagram can hold (the stack's guard is raised to
// 65507 bytes, siprec/route.go; the kernel fragments anything larger than
// the path MTU) is undeliverable.
func answerCause(err error) string {
	if errors.Is(err, sip.ErrUDPMTUCongestion) || errors.Is(err, syscall.EMSGSIZE) {
		return "sip response too large for udp; the caller must use tcp"
	}
	return ""
}
