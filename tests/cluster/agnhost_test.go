package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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
	if _, body := httpGet(t, base+"/bytes?n=300000"); len(body) != 300000 || strings.Trim(body, "x") != "" {
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
