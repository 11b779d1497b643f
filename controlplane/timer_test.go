package controlplane

import (
	"testing"

	"github.com/emiago/sipgo/sip"
)

// The Session-Expires shapes peers send: the parameter in any case, spaces
// around it, the compact form, other parameters beside it.
func TestRefresherOf(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        string
	}{
		{"Session-Expires", "1800;refresher=uas", "uas"},
		{"Session-Expires", "1800; refresher = UAS", "uas"},
		{"Session-Expires", "1800;foo=bar;refresher=uac", "uac"},
		{"x", "90;refresher=uas", "uas"},
		{"Session-Expires", "1800", ""},
		{"Session-Expires", "1800;refresher=proxy", ""},
		{"Session-Expires", "1800;refresher", ""},
	} {
		req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", Host: "example.com"})
		req.AppendHeader(sip.NewHeader(tc.name, tc.value))
		if got := refresherOf(req); got != tc.want {
			t.Errorf("%s: %s gives %q, want %q", tc.name, tc.value, got, tc.want)
		}
	}
	if got := refresherOf(sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", Host: "example.com"})); got != "" {
		t.Errorf("no Session-Expires gives %q", got)
	}
}

func TestAllowsUpdate(t *testing.T) {
	for value, want := range map[string]bool{
		"INVITE, ACK, BYE, CANCEL, UPDATE": true,
		"INVITE,ACK,update":                true,
		"INVITE, ACK, BYE":                 false,
		"INVITE, UPDATES":                  false,
	} {
		req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", Host: "example.com"})
		req.AppendHeader(sip.NewHeader("Allow", value))
		if got := allowsUpdate(req); got != want {
			t.Errorf("Allow: %s gives %v", value, got)
		}
	}
}
