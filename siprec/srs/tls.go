package srs

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
)

// TLS is the SRS's SIP over TLS (RFC 3261 §26): a listener beside UDP and
// TCP. The TLS code is sipgo's and crypto/tls's; this only binds it.
type TLS struct {
	// Listen is the TLS host:port; port 0 picks a free one (Server.TLSAddr).
	// Empty means the Listen host on port 0.
	Listen string
	// Config holds the server certificate (Certificates, required); its
	// RootCAs (nil: the system roots) verify the SRC's certificate when the
	// SRS sends its BYEs and UPDATEs to the SRC's sips: Contact. For mutual
	// TLS set ClientAuth (tls.RequireAndVerifyClientCert) and ClientCAs: an
	// SRC without a certificate from them is refused in the handshake.
	Config *tls.Config
}

// bindTLS opens the TLS listener.
func (s *Server) bindTLS() error {
	t := s.cfg.TLS
	if t.Config == nil || (len(t.Config.Certificates) == 0 && t.Config.GetCertificate == nil) {
		return fmt.Errorf("new srs: tls needs a certificate: %w", ErrConfig)
	}
	addr := t.Listen
	if addr == "" {
		addr = netip.AddrPortFrom(s.addr.Addr(), 0).String()
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("new srs: listen tls %s: %w", addr, err)
	}
	s.tlsAddr = l.Addr().(*net.TCPAddr).AddrPort()
	conf := t.Config.Clone()
	if conf.MinVersion == 0 {
		conf.MinVersion = tls.VersionTLS12
	}
	s.tls = tls.NewListener(l, conf)
	return nil
}

// TLSAddr is the SIP over TLS address; zero without Config.TLS.
func (s *Server) TLSAddr() netip.AddrPort { return s.tlsAddr }

// dialTLS is the TLS configuration for connections the SRS opens (toward
// the SRC's sips: Contact); nil without TLS.
func (c Config) dialTLS() *tls.Config {
	if c.TLS == nil || c.TLS.Config == nil {
		return nil
	}
	return &tls.Config{RootCAs: c.TLS.Config.RootCAs, Certificates: c.TLS.Config.Certificates, MinVersion: tls.VersionTLS12}
}
