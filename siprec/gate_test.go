package siprec

import (
	"testing"
	"time"
)

func TestInviteGate(t *testing.T) {
	var g inviteGate
	if h := g.enterSRS(time.Second); h != gateFree {
		t.Fatalf("free gate refused the srs: %v", h)
	}
	// The SRS's previous re-INVITE is still unanswered: RFC 3261 §14.2's 500.
	if h := g.enterSRS(time.Second); h != gateSRS {
		t.Fatalf("second srs re-invite before the first was answered: %v, want gateSRS", h)
	}
	// Answered: the next one waits for the handler to let go, then enters.
	g.answered()
	entered := make(chan gateHolder)
	go func() { entered <- g.enterSRS(time.Minute) }()
	select {
	case h := <-entered:
		t.Fatalf("entered (%v) while the previous srs re-invite held the gate", h)
	case <-time.After(20 * time.Millisecond):
	}
	g.unlock()
	if h := <-entered; h != gateFree {
		t.Fatalf("waiting srs re-invite got %v, want the gate", h)
	}
	// An answered transaction that never lets go refuses after the wait.
	g.answered()
	if h := g.enterSRS(time.Millisecond); h != gateSRSAnswered {
		t.Fatalf("stuck previous re-invite: %v, want gateSRSAnswered", h)
	}
	g.unlock()

	// Our own transaction pending: 491 at once, without waiting.
	g.lock()
	g.answered() // only an srs transaction can be marked answered
	if h := g.enterSRS(time.Minute); h != gateOurs {
		t.Fatalf("srs re-invite crossing ours: %v, want gateOurs", h)
	}
	// Ours waits for the srs's transaction to finish.
	g.unlock()
	if h := g.enterSRS(time.Second); h != gateFree {
		t.Fatalf("free gate refused the srs: %v", h)
	}
	locked := make(chan struct{})
	go func() { g.lock(); close(locked) }()
	select {
	case <-locked:
		t.Fatal("our transaction took the gate from the srs's")
	case <-time.After(20 * time.Millisecond):
	}
	g.unlock()
	<-locked
	g.unlock()
}
