// Package callgen is a SIP caller and callee for demos and tests: real SIP
// (sipgo) and real RTP, a recognisable PCMU tone each way, and counts and a
// frequency measurement of what comes back. It belongs to the control plane's
// tooling: `recforkctl call` and `recforkctl answer` are thin wrappers, and
// the end-to-end tests use it as the far party.
package callgen
