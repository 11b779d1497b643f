// Package srtp is SRTP (RFC 3711) keyed by SDES (RFC 4568 a=crypto), in
// userspace, for the data plane layer; the cipher work is
// github.com/pion/srtp's. Two uses:
//
//   - Recording copies: the eBPF clone cannot encrypt, so a fork that must
//     leave as SRTP is sent by the data plane, in clear, to a local Relay,
//     which encrypts it with the stream's own context (its own SSRC and
//     rollover counter state) and sends it on.
//   - Call legs: an EndpointCipher is the dataplane.Cipher of an SRTP call
//     leg, opening what the peer sends with the peer's key and sealing what
//     recfork sends with recfork's own.
//
// Suites: AES_CM_128_HMAC_SHA1_80 and AES_CM_128_HMAC_SHA1_32 (RFC 4568
// §6.2), the two every SRS and SIP phone supports. Key parameters with a
// lifetime or an MKI are accepted on input (RFC 4568 §9.2); recfork's own
// keys have neither.
package srtp
