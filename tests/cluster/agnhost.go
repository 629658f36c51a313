package main

// In-process stand-ins for the agnhost e2e test programs. A container of a
// pod on a test node is a *proc: a set of real loopback listeners (one per
// container port it serves, on 127.0.0.1:0 so that many pods can all "listen
// on 8080") plus goroutines that behave like the agnhost subcommand named by
// the container's args. The kubelet (kubelet*.go) maps container ports to
// the listeners' real addresses for port-forwarding.

import (
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

// standIns maps an agnhost subcommand to its stand-in. A stand-in sets up its
// listeners synchronously (so the ports exist before the pod is reported
// Running), then runs in goroutines and calls p.exit when the program would
// exit. Anything not listed here runs genericStandIn.
var standIns = map[string]func(p *proc){
	"netexec":             runNetexec,
	"port-forward-tester": runPortForwardTester,
	"tcp-reset":           runTCPReset,
	"serve-hostname":      runServeHostname,
	"pause":               runPause,
	"test-webserver":      runTestWebserver,
}

// procConfig is what a container's program gets to see.
type procConfig struct {
	hostname string
	sub      string            // agnhost subcommand ("" if not agnhost-like)
	args     []string          // arguments after the subcommand
	env      map[string]string // resolved container environment
	ports    []int32           // declared TCP container ports
	logs     *logBuffer
	attempt  int32  // restart count of this run, tags its log lines
	onPorts  func() // called (without locks held) when listeners change
	// root is the container's filesystem: a real directory that stands
	// for "/" (see agnhost_shell.go); "" means none (unit tests).
	root string
}

// proc is one run of a container's program.
type proc struct {
	procConfig
	mu        sync.Mutex
	exited    bool
	code      int
	listeners map[int32]net.Listener
	addrs     map[int32]string
	conns     map[*trackedConn]struct{}
	udpAddrs  map[int32]string // UDP port -> real address
	cleanups  []func()
	done      chan struct{}
	// term closes when the kubelet sends SIGTERM (pod deletion); onTerm,
	// if set by the stand-in, runs then. A stand-in without one ignores
	// SIGTERM and runs until the grace period ends.
	term     chan struct{}
	termOnce sync.Once
	onTerm   func()
}

func startStandIn(cfg procConfig) *proc {
	p := newProc(cfg)
	if run, ok := standIns[cfg.sub]; ok {
		run(p)
	} else {
		genericStandIn(p)
	}
	return p
}

// newProc is a run that has not started its program yet.
func newProc(cfg procConfig) *proc {
	p := &proc{
		procConfig: cfg,
		listeners:  map[int32]net.Listener{},
		addrs:      map[int32]string{},
		conns:      map[*trackedConn]struct{}{},
		udpAddrs:   map[int32]string{},
		done:       make(chan struct{}),
		term:       make(chan struct{}),
	}
	if p.onPorts == nil {
		p.onPorts = func() {}
	}
	return p
}

// commandLine picks the agnhost subcommand from a container's args (or its
// command when it has no args), skipping a leading "/agnhost"-like word.
func commandLine(command, args []string) (sub string, rest []string) {
	words := args
	if len(words) == 0 {
		words = command
	}
	if len(words) > 0 && path.Base(words[0]) == "agnhost" {
		words = words[1:]
	}
	if len(words) == 0 {
		return "", nil
	}
	return path.Base(words[0]), words[1:]
}

// Exit-code & log helpers --------------------------------------------------

// logf logs like Go's standard logger, which most agnhost programs use.
func (p *proc) logf(format string, a ...any) {
	p.println(time.Now().Format("2006/01/02 15:04:05 ") + fmt.Sprintf(format, a...))
}

// println logs a bare line, like fmt.Println in port-forward-tester.
func (p *proc) println(s string) {
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		p.logs.add(p.attempt, line)
	}
}

// printPartial logs text that does not end its line (fmt.Printf without
// "\n"): the next output continues the same line, as a container runtime
// shows it.
func (p *proc) printPartial(s string) { p.logs.addPartial(p.attempt, s) }

// sigterm delivers SIGTERM once; see proc.term.
func (p *proc) sigterm() {
	p.termOnce.Do(func() {
		close(p.term)
		p.mu.Lock()
		f := p.onTerm
		p.mu.Unlock()
		if f != nil {
			go f()
		}
	})
}

// handleTerm sets what the program does on SIGTERM.
func (p *proc) handleTerm(f func()) {
	p.mu.Lock()
	p.onTerm = f
	p.mu.Unlock()
}

// terminating reports whether SIGTERM has arrived.
func (p *proc) terminating() bool {
	select {
	case <-p.term:
		return true
	default:
		return false
	}
}

// exit ends the program with code (the first call wins): listeners and
// open connections close as they would when a real process dies.
func (p *proc) exit(code int) {
	p.mu.Lock()
	if p.exited {
		p.mu.Unlock()
		return
	}
	p.exited, p.code = true, code
	cleanups, listeners, conns := p.cleanups, p.listeners, p.conns
	p.listeners, p.addrs, p.conns = map[int32]net.Listener{}, map[int32]string{}, map[*trackedConn]struct{}{}
	p.udpAddrs = map[int32]string{}
	p.mu.Unlock()
	for _, f := range cleanups {
		f()
	}
	for _, l := range listeners {
		l.Close()
	}
	for c := range conns {
		c.TCPConn.Close()
	}
	close(p.done)
	p.onPorts()
}

// exitCode is valid once done is closed.
func (p *proc) exitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.code
}

// atExit registers cleanup to run when the program exits.
func (p *proc) atExit(f func()) {
	p.mu.Lock()
	if !p.exited {
		p.cleanups = append(p.cleanups, f)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	f()
}

// sleep waits d unless the program exits first; false means it exited.
func (p *proc) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.done:
		return false
	}
}

// portAddrs snapshots containerPort -> real listener address.
func (p *proc) portAddrs() map[int32]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[int32]string, len(p.addrs))
	for k, v := range p.addrs {
		m[k] = v
	}
	return m
}

// udpPortAddrs snapshots UDP containerPort -> real address.
func (p *proc) udpPortAddrs() map[int32]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[int32]string, len(p.udpAddrs))
	for k, v := range p.udpAddrs {
		m[k] = v
	}
	return m
}

// udpAddr is the real address standing for UDP containerPort port, or "".
func (p *proc) udpAddr(port int32) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.udpAddrs[port]
}

// listenUDP opens the real UDP socket standing for containerPort port; it
// closes when the program exits.
func (p *proc) listenUDP(port int32) (*net.UDPConn, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if p.exited {
		p.mu.Unlock()
		c.Close()
		return nil, net.ErrClosed
	}
	if _, taken := p.udpAddrs[port]; taken {
		p.mu.Unlock()
		c.Close()
		return nil, fmt.Errorf("listen udp :%d: bind: address already in use", port)
	}
	p.udpAddrs[port] = c.LocalAddr().String()
	p.cleanups = append(p.cleanups, func() { c.Close() })
	p.mu.Unlock()
	p.onPorts()
	return c, nil
}

// addr is the real address standing for containerPort port, or "".
func (p *proc) addr(port int32) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addrs[port]
}

// Listeners ----------------------------------------------------------------

// listen opens the real listener standing for containerPort port.
func (p *proc) listen(port int32) (*trackedListener, error) {
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if p.exited {
		p.mu.Unlock()
		ln.Close()
		return nil, net.ErrClosed
	}
	if _, taken := p.listeners[port]; taken {
		p.mu.Unlock()
		ln.Close()
		return nil, fmt.Errorf("listen tcp :%d: bind: address already in use", port)
	}
	tl := &trackedListener{TCPListener: ln, p: p, port: port}
	p.listeners[port] = tl
	p.addrs[port] = ln.Addr().String()
	p.mu.Unlock()
	p.onPorts()
	return tl, nil
}

// trackedListener lets exit close every accepted connection, and drops the
// port from the pod's port map once closed.
type trackedListener struct {
	*net.TCPListener
	p    *proc
	port int32
	once sync.Once
}

func (l *trackedListener) Accept() (net.Conn, error) { return l.AcceptTracked() }

func (l *trackedListener) AcceptTracked() (*trackedConn, error) {
	c, err := l.TCPListener.AcceptTCP()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{TCPConn: c, p: l.p}
	l.p.mu.Lock()
	if l.p.exited {
		l.p.mu.Unlock()
		c.Close()
		return nil, net.ErrClosed
	}
	l.p.conns[tc] = struct{}{}
	l.p.mu.Unlock()
	return tc, nil
}

func (l *trackedListener) Close() error {
	err := l.TCPListener.Close()
	l.once.Do(func() {
		l.p.mu.Lock()
		changed := l.p.listeners[l.port] == l
		if changed {
			delete(l.p.listeners, l.port)
			delete(l.p.addrs, l.port)
		}
		l.p.mu.Unlock()
		if changed {
			l.p.onPorts()
		}
	})
	return err
}

// trackedConn embeds *net.TCPConn so programs keep CloseWrite/SetLinger and
// the kernel fast paths.
type trackedConn struct {
	*net.TCPConn
	p *proc
}

func (c *trackedConn) Close() error {
	c.p.mu.Lock()
	delete(c.p.conns, c)
	c.p.mu.Unlock()
	return c.TCPConn.Close()
}

// Flag helpers: agnhost uses cobra/pflag, so accept --name=v, --name v and
// the single-dash forms.

func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		a = strings.TrimLeft(a, "-")
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

func intFlag(args []string, name string, def int) int {
	if v, ok := flagValue(args, name); ok {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

// boolFlag: --name or --name=true; "--name false" is not pflag syntax.
func boolFlag(args []string, name string, def bool) bool {
	for _, a := range args {
		a = strings.TrimLeft(a, "-")
		if a == name {
			return true
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			b, err := strconv.ParseBool(v)
			return err == nil && b
		}
	}
	return def
}
