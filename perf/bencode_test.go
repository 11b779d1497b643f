package perf

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestBencodeRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   any
		wire string
	}{
		{"string", "spam", "4:spam"},
		{"empty string", "", "0:"},
		{"int", 42, "i42e"},
		{"negative", -3, "i-3e"},
		{"list", []any{"a", 1}, "l1:ai1ee"},
		{"dict sorted", map[string]any{"command": "ping", "b": "x"}, "d1:b1:x7:command4:pinge"},
		{"nested", map[string]any{"flags": []string{"SIPREC", "all"}}, "d5:flagsl6:SIPREC3:allee"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := BencodeMarshal(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.wire {
				t.Fatalf("encoded %q, want %q", b, tc.wire)
			}
			if _, err := BencodeUnmarshal(b); err != nil {
				t.Fatalf("decode %q: %v", b, err)
			}
		})
	}
	v, err := BencodeUnmarshal([]byte("d6:result4:pong3:sdpl1:xi7eee"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"result": "pong", "sdp": []any{"x", int64(7)}}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("decoded %#v, want %#v", v, want)
	}
}

func TestBencodeRejectsMalformed(t *testing.T) {
	for _, in := range []string{"", "i42", "ie", "i4x2e", "5:abc", "l", "d3:key", "di1ei2ee", "x", "4:spamextra",
		"99999999999:a", "-1:a", strings.Repeat("l", 100) + strings.Repeat("e", 100)} {
		t.Run(in, func(t *testing.T) {
			if _, err := BencodeUnmarshal([]byte(in)); !errors.Is(err, ErrBencode) {
				t.Errorf("BencodeUnmarshal(%q) error = %v, want ErrBencode", in, err)
			}
		})
	}
	if _, err := BencodeMarshal(3.5); err == nil {
		t.Error("float encoded without error")
	}
}

func FuzzBencode(f *testing.F) {
	for _, s := range []string{"d6:result2:ok3:sdp4:v=0\ne", "li1ei-2e0:e", "d1:ad1:bl1:ceee", "i0e", "3:abc", "d"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := BencodeUnmarshal(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes and decodes to the same value.
		out, err := BencodeMarshal(toEncodable(v))
		if err != nil {
			t.Fatalf("re-encode %#v: %v", v, err)
		}
		w, err := BencodeUnmarshal(out)
		if err != nil || !reflect.DeepEqual(v, w) {
			t.Fatalf("round trip of %q: %#v != %#v (%v)", b, v, w, err)
		}
	})
}

func toEncodable(v any) any {
	switch x := v.(type) {
	case int64:
		return x
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = toEncodable(x[i])
		}
		return out
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = toEncodable(e)
		}
		return out
	}
	return v
}

func TestNGMessages(t *testing.T) {
	b, err := EncodeNG("abc123", map[string]any{"command": "ping"})
	if err != nil || string(b) != "abc123 d7:command4:pinge" {
		t.Fatalf("EncodeNG = %q, %v", b, err)
	}
	cookie, d, err := DecodeNG([]byte("abc123 d6:result4:ponge"))
	if err != nil || cookie != "abc123" || d["result"] != "pong" {
		t.Fatalf("DecodeNG = %q %v %v", cookie, d, err)
	}
	for _, bad := range []string{"nocookie", " d6:result4:ponge", "c li1ee", "c d"} {
		if _, _, err := DecodeNG([]byte(bad)); err == nil {
			t.Errorf("DecodeNG(%q) accepted", bad)
		}
	}
}

func TestSDPPort(t *testing.T) {
	sdp := AudioSDP("10.77.0.1", 30000, "sendrecv")
	if p, err := SDPPort(sdp); err != nil || p != 30000 {
		t.Errorf("SDPPort(AudioSDP) = %d, %v", p, err)
	}
	for _, bad := range []string{"v=0\r\n", "m=audio x RTP/AVP 0\r\n", "m=audio 70000 RTP/AVP 0\r\n", "m=audio\r\n"} {
		if _, err := SDPPort(bad); err == nil {
			t.Errorf("SDPPort(%q) accepted", bad)
		}
	}
}

func FuzzSDPPort(f *testing.F) {
	f.Add(AudioSDP("1.2.3.4", 4000, "recvonly"))
	f.Add("m=audio 0 RTP/AVP 0")
	f.Fuzz(func(t *testing.T, s string) {
		if p, err := SDPPort(s); err == nil && (p <= 0 || p > 65535) {
			t.Fatalf("port %d accepted", p)
		}
	})
}

func FuzzDecodeNG(f *testing.F) {
	f.Add([]byte("abc d6:result4:ponge"))
	f.Add([]byte("c d3:sdp10:m=audio 1 e"))
	f.Add([]byte(" "))
	f.Fuzz(func(t *testing.T, b []byte) {
		cookie, d, err := DecodeNG(b)
		if err == nil && (cookie == "" || d == nil) {
			t.Fatalf("accepted %q without cookie or dictionary", b)
		}
	})
}
