package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRunUsageAndUnknown(t *testing.T) {
	cases := []struct {
		args []string
		code int
		out  string
	}{
		{nil, 2, "usage: recforkctl"},
		{[]string{"--help"}, 0, "version"},
		{[]string{"no-such-command"}, 2, `unknown command "no-such-command"`},
		{[]string{"version"}, 0, "recforkctl "},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, "_"), func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(c.args, &out, &errb); code != c.code {
				t.Fatalf("exit %d, want %d", code, c.code)
			}
			if !strings.Contains(out.String()+errb.String(), c.out) {
				t.Fatalf("output %q lacks %q", out.String()+errb.String(), c.out)
			}
		})
	}
}
