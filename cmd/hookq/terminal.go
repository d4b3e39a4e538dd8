package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// isTerminal reports whether f is an *os.File open on a terminal. Progress
// bars and prompts are for people: they are shown only on a terminal, so
// that scripts and pipes get plain, stable output.
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	return ok && term.IsTerminal(int(file.Fd()))
}

// progress is a one-line progress bar redrawn in place on a terminal. On
// anything else it draws nothing. It is safe for concurrent use.
type progress struct {
	w     io.Writer
	label string
	on    bool

	mu          sync.Mutex
	done, total int64
	drawn       time.Time // when the bar was last drawn
	width       int       // columns of the last line drawn, to blank it
}

// progressEvery bounds how often the bar is redrawn.
const progressEvery = 100 * time.Millisecond

// newProgress returns a bar labelled label on w, drawn only if w is a
// terminal.
func newProgress(w io.Writer, label string) *progress {
	return &progress{w: w, label: label, on: isTerminal(w)}
}

// set records done of total and redraws the bar, at most every
// progressEvery (always when done reaches total).
func (p *progress) set(done, total int64) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done, p.total = done, total
	if now := time.Now(); now.Sub(p.drawn) >= progressEvery || done >= total {
		p.drawn = now
		p.draw()
	}
}

// add records n more done.
func (p *progress) add(n int64) {
	p.mu.Lock()
	done, total := p.done+n, p.total
	p.mu.Unlock()
	p.set(done, total)
}

// draw writes the bar over the current line. Called with p.mu held.
func (p *progress) draw() {
	const barWidth = 30
	frac := 1.0
	if p.total > 0 {
		frac = min(float64(p.done)/float64(p.total), 1)
	}
	fill := int(frac * barWidth)
	line := fmt.Sprintf("%s [%s%s] %3.0f%% %d/%d", p.label, strings.Repeat("=", fill),
		strings.Repeat(" ", barWidth-fill), frac*100, p.done, p.total)
	pad := max(p.width-len(line), 0)
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
	p.width = len(line)
}

// finish ends the bar's line, leaving the last state drawn.
func (p *progress) finish() {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.width > 0 {
		p.draw()
		fmt.Fprintln(p.w)
		p.width = 0
	}
}

// confirm asks question on stderr and reads the answer from stdin when
// stdin is a terminal; only "y" or "yes" confirms. Without a terminal it
// returns an error telling to pass --yes, so that a script never acts on
// a guess.
func confirm(stdin io.Reader, stderr io.Writer, question string) (bool, error) {
	if !isTerminal(stdin) {
		return false, usagef("%s: standard input is not a terminal, so nobody can "+
			"confirm; pass --yes to go ahead", strings.TrimSuffix(question, "?"))
	}
	fmt.Fprintf(stderr, "%s [y/N] ", question)
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(stderr)
		return false, nil
	}
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "y" || answer == "yes", nil
}
