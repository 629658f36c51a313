package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func startTestProc(t *testing.T, sub string, args []string, env map[string]string, ports ...int32) *proc {
	t.Helper()
	p := startStandIn(procConfig{hostname: "pod-a", sub: sub, args: args, env: env, ports: ports, logs: newLogBuffer()})
	t.Cleanup(func() { p.exit(0) })
	return p
}

func logText(p *proc) string {
	lines, _, _, _ := p.logs.since(0, 0)
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.text + "\n")
	}
	return b.String()
}

func waitDone(t *testing.T, p *proc) int {
	t.Helper()
	select {
	case <-p.done:
		return p.exitCode()
	case <-time.After(5 * time.Second):
		t.Fatal("program did not exit")
		return -1
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		command, args []string
		sub           string
		rest          string
	}{
		{nil, []string{"netexec", "--http-port=8080"}, "netexec", "--http-port=8080"},
		{[]string{"/agnhost"}, []string{"netexec", "--http-port", "9090"}, "netexec", "--http-port 9090"},
		{[]string{"/agnhost", "serve-hostname"}, nil, "serve-hostname", ""},
		{[]string{"/usr/local/bin/port-forward-tester"}, nil, "port-forward-tester", ""},
		{nil, nil, "", ""},
		{[]string{"nginx", "-g", "daemon off;"}, nil, "nginx", "-g daemon off;"},
	} {
		sub, rest := commandLine(tc.command, tc.args)
		if sub != tc.sub || strings.Join(rest, " ") != tc.rest {
			t.Errorf("commandLine(%q, %q) = %q %q", tc.command, tc.args, sub, rest)
		}
	}
	if got := intFlag([]string{"--http-port", "9090"}, "http-port", 1); got != 9090 {
		t.Errorf("intFlag = %d", got)
	}
	if !boolFlag([]string{"--tcp"}, "tcp", false) || boolFlag([]string{"--tcp=false"}, "tcp", true) {
		t.Error("boolFlag")
	}
}

func TestNetexec(t *testing.T) {
	p := startTestProc(t, "netexec", []string{"--http-port", "8080"}, nil)
	addr := p.addr(8080)
	if addr == "" {
		t.Fatal("no listener for 8080")
	}
	base := "http://" + addr
	if _, body := httpGet(t, base+"/hostname"); body != "pod-a" {
		t.Errorf("/hostname = %q", body)
	}
	if _, body := httpGet(t, base+"/"); !strings.HasPrefix(body, "NOW: ") {
		t.Errorf("/ = %q", body)
	}
	if code, body := httpGet(t, base+"/echo?msg=hello&code=201"); code != 201 || body != "hello" {
		t.Errorf("/echo = %d %q", code, body)
	}
	if code, _ := httpGet(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	req, _ := http.NewRequest("GET", base+"/header?key=X-Test", nil)
	req.Header.Set("X-Test", "v1")
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "v1" {
			t.Errorf("/header = %q", b)
		}
	}
	if _, body := httpGet(t, base+"/bytes?n=300000"); len(body) != 300000 {
		t.Errorf("/bytes returned %d bytes", len(body))
	}
	resp, err := http.Post(base+"/upload", "application/octet-stream", strings.NewReader(strings.Repeat("y", 200001)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "200001" {
		t.Errorf("/upload = %q", b)
	}
	if code, _ := httpGet(t, base+"/exit?code=3"); code != 200 {
		t.Errorf("/exit = %d", code)
	}
	if code := waitDone(t, p); code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	if p.addr(8080) != "" {
		t.Error("port still mapped after exit")
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("listener still open after exit")
	}
	logs := logText(p)
	for _, want := range []string{"Started HTTP server on port 8080", "GET /hostname", "GET /echo?msg=hello&code=201", "GET /exit?code=3"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
}

func TestGenericServesDeclaredPorts(t *testing.T) {
	p := startTestProc(t, "nginx", nil, nil, 80, 443)
	for _, port := range []int32{80, 443} {
		if _, body := httpGet(t, "http://"+p.addr(port)+"/hostname"); body != "pod-a" {
			t.Errorf("port %d: %q", port, body)
		}
	}
	if p.addr(8080) != "" {
		t.Error("undeclared port served")
	}
	// Killing the program cuts its open connections, like a dying process.
	c, err := net.Dial("tcp", p.addr(80))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(50 * time.Millisecond)
	p.exit(0)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, syscall.ETIMEDOUT) || isTimeout(err) {
		t.Errorf("open connection survived exit: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestServeHostname(t *testing.T) {
	p := startTestProc(t, "serve-hostname", nil, nil)
	if _, body := httpGet(t, "http://"+p.addr(9376)+"/anything"); body != "pod-a" {
		t.Errorf("http: %q", body)
	}
	q := startTestProc(t, "serve-hostname", []string{"--tcp", "--http=false", "--port=9000"}, nil)
	c, err := net.Dial("tcp", q.addr(9000))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if b, _ := io.ReadAll(c); string(b) != "pod-a" {
		t.Errorf("tcp: %q", b)
	}
	if !strings.Contains(logText(q), "Serving on port 9000.") {
		t.Errorf("logs: %s", logText(q))
	}
}

func TestPortForwardTester(t *testing.T) {
	env := map[string]string{"BIND_PORT": "8080", "EXPECTED_CLIENT_DATA": "abc", "CHUNKS": "3", "CHUNK_SIZE": "5", "CHUNK_INTERVAL": "10"}
	p := startTestProc(t, "port-forward-tester", nil, env)
	c, err := net.Dial("tcp", p.addr(8080))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("abc"))
	b, err := io.ReadAll(c)
	if err != nil || string(b) != strings.Repeat("x", 15) {
		t.Errorf("got %q, %v", b, err)
	}
	if code := waitDone(t, p); code != 0 {
		t.Errorf("exit code %d", code)
	}
	want := "Accepted client connection\nReceived expected client data\nShutting down connection\nDone\n"
	if got := logText(p); got != want {
		t.Errorf("logs:\n%s\nwant:\n%s", got, want)
	}

	// Wrong data: exit code 3, as upstream.
	env["EXPECTED_CLIENT_DATA"] = "xyz"
	q := startTestProc(t, "port-forward-tester", nil, env)
	c2, err := net.Dial("tcp", q.addr(8080))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.Write([]byte("abc"))
	if code := waitDone(t, q); code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	if !strings.Contains(logText(q), `Expect to read "xyz", but got "abc"`) {
		t.Errorf("logs: %s", logText(q))
	}
}

func TestTCPReset(t *testing.T) {
	p := startTestProc(t, "tcp-reset", nil, nil)
	c, err := net.Dial("tcp", p.addr(8080))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 10))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("read error %v, want connection reset", err)
	}
	if !strings.Contains(logText(p), "Serving on port 8080.") {
		t.Errorf("logs: %s", logText(p))
	}
}

// TestNetexecDelay: /delay?ms= answers after the delay, and reads none of a
// POST body meanwhile (the sender stalls once the socket buffers are full).
func TestNetexecDelay(t *testing.T) {
	p := startTestProc(t, "netexec", nil, nil)
	base := "http://" + p.addr(8080)
	start := time.Now()
	if code, body := httpGet(t, base+"/delay?ms=300"); code != 200 || body != "delayed 300 ms" {
		t.Errorf("/delay = %d %q", code, body)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("/delay?ms=300 answered after %v", d)
	}
	for _, q := range []string{"", "?ms=-1", "?ms=x"} {
		if code, _ := httpGet(t, base+"/delay"+q); code != 400 {
			t.Errorf("/delay%s = %d, want 400", q, code)
		}
	}

	c, err := net.Dial("tcp", p.addr(8080))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const size = 256 << 20
	fmt.Fprintf(c, "POST /delay?ms=60000 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
	buf := make([]byte, 1<<20)
	sent := 0
	c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	for sent < size {
		n, err := c.Write(buf)
		sent += n
		if err != nil {
			break
		}
	}
	if sent >= size {
		t.Fatalf("all %d bytes were taken by a handler that reads nothing", sent)
	}
	if !strings.Contains(logText(p), "POST /delay?ms=60000") {
		t.Errorf("logs: %s", logText(p))
	}
}

// waitFor polls ok every 10 ms until it holds or 5 s pass.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for start := time.Now(); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func udpAsk(t *testing.T, addr, msg string) string {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(msg))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("UDP %q: %v", msg, err)
	}
	return string(buf[:n])
}

// TestNetexecUDP: the UDP server on --udp-port (default 8081) answers
// hostname, echo (lower-cased, as upstream) and clientip.
func TestNetexecUDP(t *testing.T) {
	p := startTestProc(t, "netexec", nil, nil)
	addr := p.udpAddr(8081)
	if addr == "" {
		t.Fatal("no UDP socket for 8081")
	}
	if got := udpAsk(t, addr, "hostname"); got != "pod-a" {
		t.Errorf("hostname: %q", got)
	}
	if got := udpAsk(t, addr, "echo Hello World\n"); got != "hello world" {
		t.Errorf("echo: %q", got)
	}
	if got := udpAsk(t, addr, "clientip"); !strings.HasPrefix(got, "127.0.0.1:") {
		t.Errorf("clientip: %q", got)
	}
	if !strings.Contains(logText(p), "Started UDP server on port  8081") {
		t.Errorf("logs: %s", logText(p))
	}
	q := startTestProc(t, "netexec", []string{"--http-port=9000", "--udp-port=9001"}, nil)
	if q.udpAddr(9001) == "" || q.udpAddr(8081) != "" {
		t.Errorf("--udp-port=9001: %v", q.udpPortAddrs())
	}
	// Without a UDP server agnhost is never "ready": /healthz and /readyz 412.
	r := startTestProc(t, "netexec", []string{"--udp-port=-1"}, nil)
	if len(r.udpPortAddrs()) != 0 {
		t.Errorf("--udp-port=-1 opened %v", r.udpPortAddrs())
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, _ := httpGet(t, "http://"+r.addr(8080)+path); code != 412 {
			t.Errorf("%s with --udp-port=-1: %d, want 412", path, code)
		}
		if code, _ := httpGet(t, "http://"+p.addr(8080)+path); code != 200 {
			t.Errorf("%s: %d, want 200", path, code)
		}
	}
	p.exit(0)
	c, err := net.Dial("udp", addr)
	if err == nil {
		c.Write([]byte("hostname"))
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.Read(make([]byte, 10)); err == nil {
			t.Error("UDP answered after exit")
		}
		c.Close()
	}
}

// TestNetexecDelayShutdown: on SIGTERM, /readyz answers 503 "shutting down"
// while /healthz stays 200; it serves --delay-shutdown seconds, then exits 0.
func TestNetexecDelayShutdown(t *testing.T) {
	p := startTestProc(t, "netexec", []string{"--delay-shutdown=1"}, nil)
	base := "http://" + p.addr(8080)
	if code, body := httpGet(t, base+"/readyz"); code != 200 || body != "ok" {
		t.Errorf("/readyz before SIGTERM: %d %q", code, body)
	}
	start := time.Now()
	p.sigterm()
	if code, body := httpGet(t, base+"/readyz"); code != 503 || body != "shutting down" {
		t.Errorf("/readyz after SIGTERM: %d %q", code, body)
	}
	if code, _ := httpGet(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz after SIGTERM: %d", code)
	}
	if code := waitDone(t, p); code != 0 {
		t.Errorf("exit code %d", code)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("exited %v after SIGTERM, want >= 1s", d)
	}
	if !strings.Contains(logText(p), "Sleeping 1 seconds before terminating...") {
		t.Errorf("logs: %s", logText(p))
	}
	// Without --delay-shutdown the stand-in keeps serving (the kubelet stops
	// it when the grace period ends).
	q := startTestProc(t, "netexec", nil, nil)
	q.sigterm()
	time.Sleep(100 * time.Millisecond)
	if code, _ := httpGet(t, "http://"+q.addr(8080)+"/readyz"); code != 503 {
		t.Errorf("/readyz after SIGTERM: %d", code)
	}
}

func shellGet(t *testing.T, base, cmd string) map[string]string {
	t.Helper()
	code, body := httpGet(t, base+"/shell?cmd="+url.QueryEscape(cmd))
	if code != 200 {
		t.Fatalf("/shell %q: %d %s", cmd, code, body)
	}
	out := map[string]string{}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("/shell %q: %q: %v", cmd, body, err)
	}
	return out
}

// TestNetexecShell: /shell runs the command in the container's shell and
// answers {"output", "error"} with 200, as upstream.
func TestNetexecShell(t *testing.T) {
	p := startTestProc(t, "netexec", nil, map[string]string{"GREETING": "hi"})
	base := "http://" + p.addr(8080)
	for _, tc := range []struct{ cmd, output, err string }{
		{"echo hello", "hello\n", ""},
		{"echo $GREETING; hostname", "hi\npod-a\n", ""},
		{"echo data > /tmp/f; cat /tmp/f && test -e /tmp/f", "data\n", ""},
		{"rm /tmp/f; test -e /tmp/f", "", "exit status 1"},
		{"mkdir -p /a/b && touch /a/b/c && ls /a/b", "c\n", ""},
		{"cat /nope", "cat: can't open '/nope': No such file or directory\n", "exit status 1"},
		{"exit 3", "", "exit status 3"},
		{"/bin/true && /bin/false", "", "exit status 1"},
		{"wget http://x", "sh: wget: not found\n", "exit status 127"},
		{"cd /a && cd b && ls && pwd", "c\n/a/b\n", ""},
	} {
		out := shellGet(t, base, tc.cmd)
		if out["output"] != tc.output || out["error"] != tc.err {
			t.Errorf("/shell %q = %q", tc.cmd, out)
		}
	}
	_ = p
	if !strings.Contains(logText(p), "GET /shell?cmd=exit 3") {
		t.Errorf("logs: %s", logText(p))
	}
	// ".." does not leave the container's root.
	if out := shellGet(t, base, "ls /../../../.."); strings.Contains(out["output"], "proc") {
		t.Errorf("escaped the root: %q", out)
	}
}

// expectedBytes is the /bytes stream, computed from its definition.
func expectedBytes(n int, seed uint64) []byte {
	var table []byte
	for i := 0; i < 2048; i++ {
		sum := sha256.Sum256([]byte(fmt.Sprintf("tender-bytes:%d:%d", seed, i)))
		table = append(table, sum[:]...)
	}
	out := make([]byte, 0, n+65536)
	for b := uint64(0); len(out) < n; b++ {
		var word [8]byte
		binary.LittleEndian.PutUint64(word[:], b)
		for i := range table {
			out = append(out, table[i]^word[i%8])
		}
	}
	return out[:n]
}

func TestNetexecBytes(t *testing.T) {
	p := startTestProc(t, "netexec", nil, nil)
	base := "http://" + p.addr(8080)
	const n = 3*65536 + 123
	_, body := httpGet(t, fmt.Sprintf("%s/bytes?n=%d", base, n))
	if !bytes.Equal([]byte(body), expectedBytes(n, 0)) {
		t.Error("/bytes differs from its definition")
	}
	_, seeded := httpGet(t, fmt.Sprintf("%s/bytes?n=%d&seed=42", base, n))
	if !bytes.Equal([]byte(seeded), expectedBytes(n, 42)) || seeded == body {
		t.Error("/bytes?seed=42 differs from its definition")
	}
	// No block repeats another, so a duplicated or lost block shows.
	blocks := map[string]bool{}
	for i := 0; i+65536 <= len(body); i += 65536 {
		blocks[body[i:i+65536]] = true
	}
	if len(blocks) != 3 {
		t.Errorf("%d distinct blocks of 3", len(blocks))
	}
	for _, q := range []string{"n=-1", "n=x", "n=1&seed=-1", "n=1&seed=x"} {
		if code, _ := httpGet(t, base+"/bytes?"+q); code != 400 {
			t.Errorf("/bytes?%s: %d, want 400", q, code)
		}
	}
}

// TestPause: "Paused"; SIGTERM: (after --delay-shutdown) "exiting 2", exit 2.
func TestPause(t *testing.T) {
	p := startTestProc(t, "pause", []string{"--delay-shutdown=1"}, nil, 8080)
	if p.addr(8080) != "" {
		t.Error("pause serves a port")
	}
	start := time.Now()
	p.sigterm()
	waitFor(t, "the sleeping line", func() bool { return strings.Contains(logText(p), "Sleeping") })
	if got := logText(p); got != "Paused\nSleeping 1 seconds before exit ...\n" {
		t.Errorf("logs while sleeping: %q", got)
	}
	if code := waitDone(t, p); code != 2 || time.Since(start) < time.Second {
		t.Errorf("exit code %d after %v", code, time.Since(start))
	}
	var b strings.Builder
	lines, _, _, _ := p.logs.since(0, 0)
	for _, l := range lines {
		b.WriteString(l.text)
		if !l.partial {
			b.WriteByte('\n')
		}
	}
	if b.String() != "Paused\nSleeping 1 seconds before exit ...exiting 2\n" {
		t.Errorf("logs: %q", b.String())
	}
	q := startTestProc(t, "pause", nil, nil)
	q.sigterm()
	if code := waitDone(t, q); code != 2 {
		t.Errorf("exit code %d", code)
	}
}

// TestTestWebserver serves the container's files with upstream's headers.
func TestTestWebserver(t *testing.T) {
	p := startTestProc(t, "test-webserver", []string{"--port=8000"}, nil)
	root := p.fsRoot()
	os.MkdirAll(filepath.Join(root, "data"), 0o755)
	os.WriteFile(filepath.Join(root, "data", "file.txt"), []byte("served"), 0o644)
	resp, err := http.Get("http://" + p.addr(8000) + "/data/file.txt")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "served" || resp.Header.Get("Cache-Control") != "private" || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("GET /data/file.txt: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	req, _ := http.NewRequest("GET", "http://"+p.addr(8000)+"/data/file.txt", nil)
	req.Header.Set("Range", "bytes=2-3")
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 206 || string(b) != "rv" {
			t.Errorf("range: %d %q", resp.StatusCode, b)
		}
	}
	if code, _ := httpGet(t, "http://"+p.addr(8000)+"/nope"); code != 404 {
		t.Errorf("missing file: %d", code)
	}
	if q := startTestProc(t, "test-webserver", nil, nil); q.addr(80) == "" {
		t.Error("default port 80 not served")
	}
}

// TestPortForwardTesterOneConnection: like agnhost, one connection per run;
// a second one waits in the listen queue unserved and is cut at exit.
func TestPortForwardTesterOneConnection(t *testing.T) {
	env := map[string]string{"BIND_PORT": "8080", "CHUNKS": "1", "CHUNK_SIZE": "3", "CHUNK_INTERVAL": "0"}
	p := startTestProc(t, "port-forward-tester", nil, env)
	first, err := net.Dial("tcp", p.addr(8080))
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	waitFor(t, "the first connection accepted", func() bool { return strings.Contains(logText(p), "Accepted") })
	second, err := net.Dial("tcp", p.addr(8080))
	if err != nil {
		t.Fatalf("second connect: %v", err)
	}
	defer second.Close()
	if b, _ := io.ReadAll(first); string(b) != "xxx" {
		t.Errorf("first connection got %q", b)
	}
	waitDone(t, p)
	second.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := second.Read(make([]byte, 10)); n != 0 || err == nil || isTimeout(err) {
		t.Errorf("second connection: %d bytes, %v", n, err)
	}
	if strings.Count(logText(p), "Accepted client connection") != 1 {
		t.Errorf("logs: %s", logText(p))
	}
}
