package siprec

import (
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// gateHolder says who holds a dialog's inviteGate.
type gateHolder int

const (
	gateFree        gateHolder = iota
	gateOurs                   // our INVITE (or BYE) transaction is pending
	gateSRS                    // an SRS re-INVITE is being answered
	gateSRSAnswered            // its final response is sent; a 2xx may await the ACK
)

// inviteGate lets one INVITE transaction at a time run on a dialog, ours or
// the SRS's, and knows whose it is, so that a crossing re-INVITE from the SRS
// gets the answer RFC 3261 §14.2 asks for: 491 while ours is pending, 500
// while the SRS's previous one is still unanswered. Once we sent the final
// response to the SRS's previous re-INVITE, the SRS may send the next at
// once; that one waits (bounded) for the previous to finish instead of being
// refused because our handler had not yet let go.
type inviteGate struct {
	mu     sync.Mutex
	holder gateHolder
	freed  chan struct{} // closed when the holder leaves
}

// lock takes the gate for our own transaction, waiting for any holder.
func (g *inviteGate) lock() {
	for {
		g.mu.Lock()
		if g.holder == gateFree {
			g.holder, g.freed = gateOurs, make(chan struct{})
			g.mu.Unlock()
			return
		}
		ch := g.freed
		g.mu.Unlock()
		<-ch
	}
}

// unlock frees the gate, whoever took it.
func (g *inviteGate) unlock() {
	g.mu.Lock()
	g.holder = gateFree
	close(g.freed)
	g.mu.Unlock()
}

// enterSRS takes the gate for an SRS re-INVITE. It returns gateFree when it
// took it; otherwise the holder that refused it. An SRS re-INVITE whose
// final response is out waits up to wait for it to finish.
func (g *inviteGate) enterSRS(wait time.Duration) gateHolder {
	var deadline <-chan time.Time
	for {
		g.mu.Lock()
		h := g.holder
		if h == gateFree {
			g.holder, g.freed = gateSRS, make(chan struct{})
			g.mu.Unlock()
			return gateFree
		}
		ch := g.freed
		g.mu.Unlock()
		if h != gateSRSAnswered {
			return h
		}
		if deadline == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-ch:
		case <-deadline:
			return h
		}
	}
}

// answered records that the SRS's re-INVITE has its final response.
func (g *inviteGate) answered() {
	g.mu.Lock()
	if g.holder == gateSRS {
		g.holder = gateSRSAnswered
	}
	g.mu.Unlock()
}

// answeringTx marks the gate answered as a final response leaves, before the
// SRS can see it.
type answeringTx struct {
	sip.ServerTransaction
	g *inviteGate
}

func (t answeringTx) Respond(res *sip.Response) error {
	if res.StatusCode >= 200 {
		t.g.answered()
	}
	return t.ServerTransaction.Respond(res)
}
