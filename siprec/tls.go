package siprec

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// TLSConfig turns on SIP over TLS toward SRSs (RFC 3261 §26: sips: URIs and
// ;transport=tls). The TLS code is sipgo's; this only says which
// certificates it uses.
type TLSConfig struct {
	// Certificates are the SRC's own: served on its TLS listener, where an
	// SRS sends its BYEs and re-INVITEs (our Contact is a sips: URI), and
	// offered to an SRS that asks for a client certificate. Required.
	Certificates []tls.Certificate
	// RootCAs verify the SRS's certificate, against the host of the SRS
	// URI; nil means the system roots.
	RootCAs *x509.CertPool
	// Port is the SRC's TLS port on the Listen address; zero picks a free
	// one (see Client.TLSAddr).
	Port uint16
}

func (t *TLSConfig) validate() error {
	if t == nil {
		return nil
	}
	if len(t.Certificates) == 0 {
		return fmt.Errorf("tls: a certificate is required: %w", ErrInvalidConfig)
	}
	return nil
}

// tlsPort is the default port of sips: URIs (RFC 3261 §19.1.2).
const tlsPort = 5061

// listenTLS opens the SRC's TLS listener on the SIP address's IP.
func (c *Client) listenTLS() error {
	t := c.cfg.TLS
	ap := netip.AddrPortFrom(c.sipAddr.Addr(), t.Port)
	l, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(ap))
	if err != nil {
		return fmt.Errorf("listen sip tls %s: %w", ap, err)
	}
	c.tlsAddr = l.Addr().(*net.TCPAddr).AddrPort()
	c.tlsLn = tls.NewListener(l, &tls.Config{Certificates: t.Certificates, MinVersion: tls.VersionTLS12})
	return nil
}

// TLSAddr is the address of the SRC's TLS listener; zero without TLS.
func (c *Client) TLSAddr() netip.AddrPort { return c.tlsAddr }

// tlsClient returns the sipgo client that dials SRSs named name over TLS.
// sipgo verifies a dialled certificate against the destination it is given,
// which is an address the SRC resolved (RFC 3263), not the URI's host; so
// each SRS host name gets a user agent whose TLS configuration names it
// (RFC 5922 §7: the identity checked is the URI's host).
func (c *Client) tlsClient(name string) (*sipgo.Client, error) {
	c.tlsMu.Lock()
	defer c.tlsMu.Unlock()
	if cl := c.tlsClients[name]; cl != nil {
		return cl, nil
	}
	if c.tlsClients == nil {
		c.tlsClients = map[string]*sipgo.Client{}
	}
	conf := &tls.Config{
		ServerName:   name,
		RootCAs:      c.cfg.TLS.RootCAs,
		Certificates: c.cfg.TLS.Certificates,
		MinVersion:   tls.VersionTLS12,
	}
	host := c.contact.Address.Host
	ua, err := sipgo.NewUA(sipgo.WithUserAgent(c.cfg.UserAgent), sipgo.WithUserAgentHostname(host), sipgo.WithUserAgenTLSConfig(conf))
	if err != nil {
		return nil, fmt.Errorf("new sip tls user agent for %s: %w", name, err)
	}
	// An SRS may send its requests back over the connection we opened:
	// they get the same handlers as on the listeners.
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(c.log))
	if err != nil {
		ua.Close()
		return nil, fmt.Errorf("new sip tls server for %s: %w", name, err)
	}
	c.handle(srv)
	cl, err := sipgo.NewClient(ua, sipgo.WithClientLogger(c.log), sipgo.WithClientHostname(host))
	if err != nil {
		ua.Close()
		return nil, fmt.Errorf("new sip tls client for %s: %w", name, err)
	}
	c.tlsUAs = append(c.tlsUAs, ua)
	c.tlsClients[name] = cl
	return cl, nil
}

// clientFor is the sipgo client of a hop.
func (c *Client) clientFor(h hop) (*sipgo.Client, error) {
	switch h.tport {
	case "TLS":
		if c.cfg.TLS == nil {
			return nil, fmt.Errorf("sips needs TLS, which is not configured")
		}
		return c.tlsClient(h.name)
	case "TCP":
		return c.tcpClient, nil
	}
	return c.udpClient, nil
}

// closeTLS closes the per-name user agents.
func (c *Client) closeTLS() {
	c.tlsMu.Lock()
	uas := c.tlsUAs
	c.tlsUAs, c.tlsClients = nil, nil
	c.tlsMu.Unlock()
	for _, ua := range uas {
		ua.Close()
	}
}

// handle installs the SRC's request handlers on srv.
func (c *Client) handle(srv *sipgo.Server) {
	srv.OnBye(c.onBye)
	srv.OnInvite(c.onInvite)
	srv.OnAck(c.onAck)
	srv.OnUpdate(c.onUpdate)
	srv.OnOptions(c.onOptions)
	srv.OnNoRoute(c.onNoRoute)
}

// tlsContact is our Contact for a dialog over TLS: a sips: URI on the TLS
// port (RFC 3261 §8.1.1.8: a sips Request-URI needs a sips Contact). The
// ;transport=tls parameter is kept because sipgo peers pick the transport
// from it, not from the scheme.
func (c *Client) tlsContact() sip.ContactHeader {
	h := sip.ContactHeader{Address: *c.contact.Address.Clone(), Params: c.contact.Params.Clone()}
	h.Address.Scheme = "sips"
	h.Address.Port = int(c.tlsAddr.Port())
	h.Address.UriParams = sip.NewParams()
	h.Address.UriParams.Add("transport", "tls")
	return h
}
