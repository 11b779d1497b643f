package controlplane

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/recfork/recfork/siprec"
	"github.com/recfork/recfork/siprec/srs"
)

// tlsSetup is SIP over TLS as the Config's TLS fields ask: one certificate
// for the call listener, the SRC's own listener and the built-in SRS, and
// the roots SRS certificates are verified with.
type tlsSetup struct {
	cert  tls.Certificate
	roots *x509.CertPool // nil: the system roots
	// clients, when set, is what a TLS caller's client certificate must
	// chain to (Config.TLSClientCA): the call listener requires one.
	clients *x509.CertPool
}

// validateTLS checks the TLS fields and fills in TLSListen's default.
func (cfg *Config) validateTLS() error {
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return fmt.Errorf("tls: --tls-cert and --tls-key go together: %w", ErrBadConfig)
	}
	if cfg.TLSCert == "" {
		if cfg.TLSCA != "" || cfg.TLSListen != "" || cfg.TLSClientCA != "" {
			return fmt.Errorf("tls: --tls-ca, --tls-client-ca and --tls-listen need --tls-cert and --tls-key: %w", ErrBadConfig)
		}
		return nil
	}
	if cfg.TLSListen == "" {
		host, _, _ := net.SplitHostPort(cfg.Listen)
		cfg.TLSListen = net.JoinHostPort(host, strconv.Itoa(siprecTLSPort))
	}
	if _, _, err := net.SplitHostPort(cfg.TLSListen); err != nil {
		return fmt.Errorf("tls listen %q: %v: %w", cfg.TLSListen, err, ErrBadConfig)
	}
	return nil
}

// siprecTLSPort is the default SIP over TLS port (RFC 3261 §19.1.2).
const siprecTLSPort = 5061

// loadTLS reads the certificate, key and CA files; nil without TLS.
func loadTLS(cfg Config) (*tlsSetup, error) {
	if cfg.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("load tls certificate %s: %w", cfg.TLSCert, err)
	}
	ts := &tlsSetup{cert: cert}
	if ts.roots, err = certPool("tls ca", cfg.TLSCA); err != nil {
		return nil, err
	}
	if ts.clients, err = certPool("tls client ca", cfg.TLSClientCA); err != nil {
		return nil, err
	}
	return ts, nil
}

// certPool reads a PEM file of certificates; nil for no file.
func certPool(what, file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s: no PEM certificate in it: %w", what, file, ErrBadConfig)
	}
	return pool, nil
}

func (ts *tlsSetup) serverConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{ts.cert}, RootCAs: ts.roots, MinVersion: tls.VersionTLS12}
}

// callConfig is the call listener's: with client CAs, mutual TLS.
func (ts *tlsSetup) callConfig() *tls.Config {
	c := ts.serverConfig()
	if ts.clients != nil {
		c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, ts.clients
	}
	return c
}

// src is the SRC's TLS configuration; nil without TLS.
func (ts *tlsSetup) src() *siprec.TLSConfig {
	if ts == nil {
		return nil
	}
	return &siprec.TLSConfig{Certificates: []tls.Certificate{ts.cert}, RootCAs: ts.roots}
}

// builtinSRS is the built-in SRS's TLS listener on ip; nil without TLS.
func (ts *tlsSetup) builtinSRS(ip netip.Addr) *srs.TLS {
	if ts == nil {
		return nil
	}
	return &srs.TLS{Listen: netip.AddrPortFrom(ip, 0).String(), Config: ts.serverConfig()}
}

// startTLS opens the call listener for SIP over TLS when configured. The
// TLS code is sipgo's (ServeTLS) and crypto/tls's; connections are capped
// like TCP's.
func (d *Daemon) startTLS() error {
	ts, err := loadTLS(d.cfg)
	if err != nil || ts == nil {
		return err
	}
	ln, err := net.Listen("tcp", d.cfg.TLSListen)
	if err != nil {
		return fmt.Errorf("listen sip tls %s: %w", d.cfg.TLSListen, err)
	}
	lim := d.cfg.Limits
	d.tlsLn = newLimitedListener(ln, lim.MaxTCPConns, lim.MaxTCPConnsPerSource, lim.TCPFirstReadTimeout, lim.TCPIdleTimeout,
		func(limit string) { d.metrics.limited.WithLabelValues("sip_tls_" + limit).Inc() })
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	d.tlsAddr = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	tl := tls.NewListener(d.tlsLn, ts.callConfig())
	d.wg.Add(1)
	go func() { defer d.wg.Done(); _ = d.server.ServeTLS(checkedListener{Listener: tl, refused: d.rawRefused}) }()
	d.log.Info("sip listening", "addr", d.tlsAddr.String(), "transports", "tls", "client_certificates", ts.clients != nil)
	return nil
}

// tlsContact is our Contact for a dialog whose INVITE came over TLS: a
// sips: URI on the TLS port, so the caller's ACK, re-INVITEs and BYE stay on
// TLS (RFC 3261 §8.1.1.8, §26.2); nil for any other transport (the default
// Contact).
func (d *Daemon) tlsContact(req *sip.Request) *sip.ContactHeader {
	if d.tlsLn == nil || !strings.EqualFold(req.Transport(), "TLS") {
		return nil
	}
	h := sip.HeaderClone(&d.contact).(*sip.ContactHeader)
	h.Address.Scheme = "sips"
	h.Address.Port = int(d.tlsAddr.Port())
	h.Address.UriParams = sip.NewParams()
	// sipgo peers pick the transport from the parameter, not the scheme.
	h.Address.UriParams.Add("transport", "tls")
	return h
}

// TLSAddr is the SIP over TLS call listener's address; zero without TLS.
func (d *Daemon) TLSAddr() netip.AddrPort { return d.tlsAddr }
