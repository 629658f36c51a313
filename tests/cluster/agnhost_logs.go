package main

import (
	"sync"
	"time"
)

// logBuffer is a container's output. Lines of every run are kept in one
// buffer (a restarted container's log is appended, so `kubectl logs` still
// shows what the earlier run printed); each line is tagged with its run so
// `--previous` can show only the previous run.
type logBuffer struct {
	mu      sync.Mutex
	lines   []logLine
	base    int // index of lines[0] in the whole history (old lines are trimmed)
	ended   map[int32]bool
	closed  bool          // the pod is gone: followers stop
	changed chan struct{} // closed and replaced whenever something happens
}

type logLine struct {
	t       time.Time
	attempt int32
	text    string
	partial bool // the line goes on in the next entry (no newline yet)
}

// maxLogLines bounds memory when a benchmark makes netexec log a lot.
const maxLogLines = 20000

func newLogBuffer() *logBuffer {
	return &logBuffer{ended: map[int32]bool{}, changed: make(chan struct{})}
}

func (b *logBuffer) notifyLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *logBuffer) add(attempt int32, text string) { b.append(attempt, text, false) }

// addPartial adds text that the program has not ended with a newline yet.
func (b *logBuffer) addPartial(attempt int32, text string) { b.append(attempt, text, true) }

func (b *logBuffer) append(attempt int32, text string, partial bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, logLine{time.Now(), attempt, text, partial})
	if len(b.lines) > maxLogLines {
		drop := len(b.lines) - maxLogLines/2
		b.lines = append([]logLine(nil), b.lines[drop:]...)
		b.base += drop
	}
	b.notifyLocked()
}

// endAttempt marks a run as finished, ending `logs -f` on it.
func (b *logBuffer) endAttempt(attempt int32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ended[attempt] = true
	b.notifyLocked()
}

// close ends every follower (the pod is gone).
func (b *logBuffer) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.notifyLocked()
}

// since returns the lines from absolute index from on, the next index, whether
// attempt has ended (or the buffer closed), and a channel that closes on the
// next change.
func (b *logBuffer) since(from int, attempt int32) (lines []logLine, next int, ended bool, changed <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if from < b.base {
		from = b.base
	}
	lines = append(lines, b.lines[from-b.base:]...)
	return lines, b.base + len(b.lines), b.ended[attempt] || b.closed, b.changed
}
