// Package srtp encrypts recording copies with SRTP (RFC 3711) keyed by SDES
// (RFC 4568 a=crypto), in userspace: the eBPF clone cannot encrypt, so a
// fork that must leave as SRTP is sent by the data plane, in clear, to a
// local Relay, which encrypts it with the stream's own context (its own
// SSRC and rollover counter state) and sends it on. It belongs to the data
// plane layer; the cipher work is github.com/pion/srtp's.
//
// Suites: AES_CM_128_HMAC_SHA1_80 and AES_CM_128_HMAC_SHA1_32 (RFC 4568
// §6.2), the two every SRS supports. Key parameters with a lifetime or an
// MKI are accepted on input (RFC 4568 §9.2) and never sent.
package srtp
