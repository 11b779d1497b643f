package perf

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Progress draws one progress bar per scenario on a terminal, or prints a line
// per step elsewhere (CI logs). A scenario's bar goes from 0 to Total steps.
type Progress struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	name  string
	total int
	done  int
	note  string
	start time.Time
}

// NewProgress writes to w; bars are redrawn in place only when w is a terminal.
func NewProgress(w io.Writer) *Progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		tty = err == nil
	}
	return &Progress{w: w, tty: tty}
}

// Begin starts the bar of a scenario with total steps.
func (p *Progress) Begin(name string, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.name, p.total, p.done, p.note, p.start = name, max(total, 1), 0, "", time.Now()
	p.draw(false)
}

// Step advances the bar by one step and shows note.
func (p *Progress) Step(note string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = min(p.done+1, p.total)
	p.note = note
	p.draw(false)
}

// Total changes the number of steps (a search may end early or need more).
func (p *Progress) Total(total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total = max(total, p.done, 1)
	p.draw(false)
}

// End completes the bar with the scenario's outcome.
func (p *Progress) End(outcome string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = p.total
	p.note = outcome
	p.draw(true)
}

// TextBar renders a bar of width cells for done of total.
func TextBar(done, total, width int) string {
	if total <= 0 {
		total = 1
	}
	done = min(max(done, 0), total)
	n := done * width / total
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

func (p *Progress) draw(final bool) {
	if p.w == nil {
		return
	}
	line := fmt.Sprintf("%-16s %s %3d%% %5.1fs %s", p.name, TextBar(p.done, p.total, 30),
		p.done*100/p.total, time.Since(p.start).Seconds(), p.note)
	switch {
	case p.tty:
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		if final {
			fmt.Fprintln(p.w)
		}
	default:
		fmt.Fprintln(p.w, line)
	}
}
