package srs

import (
	"fmt"
	"sync"
	"testing"
)

// TestConcurrentSessions records several calls at once over both
// transports; each must keep its own streams and files.
func TestConcurrentSessions(t *testing.T) {
	srv, _ := startServer(t)
	ctx := waitCtx(t)
	const calls = 8
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	srcs := make([]*testSRC, calls)
	for i := range calls {
		transport := "UDP"
		if i%2 == 1 {
			transport = "TCP"
		}
		srcs[i] = newTestSRC(t, srv.Addr().String(), transport)
	}
	for i, src := range srcs {
		wg.Go(func() {
			// Short labels: sipgo refuses UDP requests over 1300 bytes
			// (RFC 3261 §18.1.1), and this INVITE is close to that.
			labels := []string{fmt.Sprint(2 * i), fmt.Sprint(2*i + 1)}
			res := src.invite(ctx, "multipart/mixed;boundary="+testBoundary,
				multipartBody(src.sdpOffer([]string{"sendonly", "sendonly"}, labels, nil), testMetadata("complete", labels...)))
			if res.StatusCode != 200 {
				errs <- fmt.Errorf("call %d: %d", i, res.StatusCode)
				return
			}
			ports, _ := answerPorts(t, res)
			for j, p := range ports {
				newRTPSender(t, p, uint32(100*i+j), 500).send(t, 10+i)
			}
			waitPackets(t, ctx, srv, src.callID, uint64(10+i), uint64(10+i))
			if res := src.bye(ctx); res.StatusCode != 200 {
				errs <- fmt.Errorf("call %d bye: %d", i, res.StatusCode)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	snap, err := srv.WaitFor(ctx, func(s []SessionInfo) bool {
		ended := 0
		for _, si := range s {
			if si.State == StateEnded {
				ended++
			}
		}
		return ended == calls
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, src := range srcs {
		si, ok := findSession(snap, src.callID)
		if !ok || len(si.Streams) != 2 || si.Streams[0].Label != fmt.Sprint(2*i) {
			t.Fatalf("call %d: %+v", i, si)
		}
		for _, st := range si.Streams {
			if st.Packets != uint64(10+i) || st.Samples != st.StartOffset+int64(160*(10+i)) {
				t.Fatalf("call %d stream %s: %d packets, %d samples from %d", i, st.Label, st.Packets, st.Samples, st.StartOffset)
			}
		}
	}
}
