package main

// The stand-in programs. Log texts follow upstream agnhost, since e2e-style
// tests grep `kubectl logs` for them.

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// serveHTTP runs handler on the listener standing for containerPort port.
func (p *proc) serveHTTP(port int32, h http.Handler) bool {
	ln, err := p.listen(port)
	if err != nil {
		p.logf("listen tcp :%d: %v", port, err)
		p.exit(1)
		return false
	}
	srv := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}
	p.atExit(func() { srv.Close() })
	go srv.Serve(ln)
	return true
}

// genericStandIn serves netexec's HTTP API on each declared TCP port, so an
// nginx or any other image still answers through port-forward.
func genericStandIn(p *proc) {
	ready := &atomic.Bool{}
	ready.Store(true)
	for _, port := range p.ports {
		if !p.serveHTTP(port, netexecMux(p, ready)) {
			return
		}
		p.logf("Started HTTP server on port %d", port)
	}
}

// netexec ------------------------------------------------------------------

// runNetexec: HTTP on --http-port (8080), the UDP server on --udp-port
// (8081, -1 = none), and --delay-shutdown=N: on SIGTERM /readyz answers
// 503, it logs, keeps serving N seconds and exits 0. Without
// --delay-shutdown agnhost exits at once on SIGTERM; here it keeps serving
// until the kubelet stops it at the end of the grace period (what the
// suite's grace-period tests were written against).
func runNetexec(p *proc) {
	port := int32(intFlag(p.args, "http-port", 8080))
	udpPort := intFlag(p.args, "udp-port", 8081)
	delay := intFlag(p.args, "delay-shutdown", 0)
	// ready is agnhost's serverReady: set once the UDP server runs, so
	// /healthz and /readyz answer 412 with --udp-port=-1, as upstream.
	ready := &atomic.Bool{}
	p.handleTerm(func() {
		if delay <= 0 {
			return
		}
		p.logf("Sleeping %d seconds before terminating...", delay)
		if p.sleep(time.Duration(delay) * time.Second) {
			p.exit(0)
		}
	})
	if !p.serveHTTP(port, netexecMux(p, ready)) {
		return
	}
	p.logf("Started HTTP server on port %d", port)
	if udpPort != -1 {
		startUDPServer(p, int32(udpPort), ready)
	}
}

// startUDPServer answers "hostname", "echo MSG" and "clientip" datagrams
// (lower-cased and trimmed first, as upstream).
func startUDPServer(p *proc, port int32, ready *atomic.Bool) {
	c, err := p.listenUDP(port)
	if err != nil {
		p.logf("Error occurred: failed to create listener for UDP address :%d:%v", port, err)
		p.exit(1)
		return
	}
	p.logf("Started UDP server on port  %d", port)
	ready.Store(true)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				ready.Store(false)
				return
			}
			text := strings.ToLower(strings.TrimSpace(string(buf[:n])))
			switch {
			case text == "hostname":
				p.logf("Sending udp hostName response")
				c.WriteToUDP([]byte(p.hostname), from)
			case strings.HasPrefix(text, "echo "):
				msg := strings.SplitN(text, " ", 2)[1]
				p.logf("Echoing %v to UDP client %s", msg, from)
				c.WriteToUDP([]byte(msg), from)
			case text == "clientip":
				p.logf("Sending clientip back to UDP client %s", from)
				c.WriteToUDP([]byte(from.String()), from)
			case text != "":
				p.logf("Unknown UDP command received from %s: %v", from, text)
			}
		}
	}()
}

// /bytes content: a seeded pseudo-random stream that never repeats a block,
// so that a checksum catches lost, repeated or reordered data. Block b
// (bytesBlock bytes, the last one cut short) is the seed's table XOR the
// 8-byte little-endian b repeated; the table is SHA-256("tender-bytes:SEED:i")
// for i = 0..2047, concatenated. tests/clusterlib.py (expected_bytes)
// computes the same stream.
const bytesBlock = 64 << 10

var bytesTables sync.Map // seed -> *[bytesBlock]byte

func bytesTable(seed uint64) *[bytesBlock]byte {
	if t, ok := bytesTables.Load(seed); ok {
		return t.(*[bytesBlock]byte)
	}
	t := new([bytesBlock]byte)
	for i := 0; i < bytesBlock/sha256.Size; i++ {
		sum := sha256.Sum256([]byte(fmt.Sprintf("tender-bytes:%d:%d", seed, i)))
		copy(t[i*sha256.Size:], sum[:])
	}
	t2, _ := bytesTables.LoadOrStore(seed, t)
	return t2.(*[bytesBlock]byte)
}

// fillBytesBlock writes block b of the seed's stream into dst (bytesBlock long).
func fillBytesBlock(dst []byte, table *[bytesBlock]byte, b uint64) {
	for i := 0; i < bytesBlock; i += 8 {
		binary.LittleEndian.PutUint64(dst[i:], binary.LittleEndian.Uint64(table[i:])^b)
	}
}

// copyBufs are the 64 KiB buffers of the hot paths (uploads, port-forward).
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 128<<10); return &b }}

func netexecMux(p *proc, ready *atomic.Bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		p.logf("GET /")
		fmt.Fprintf(w, "NOW: %v", time.Now())
	})
	hostname := func(w http.ResponseWriter, r *http.Request) {
		p.logf("GET %s", r.URL.Path)
		fmt.Fprint(w, p.hostname)
	}
	mux.HandleFunc("/hostname", hostname)
	mux.HandleFunc("/hostName", hostname)
	mux.HandleFunc("/clientip", func(w http.ResponseWriter, r *http.Request) {
		p.logf("GET /clientip")
		fmt.Fprint(w, r.RemoteAddr)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		msg, code := r.FormValue("msg"), r.FormValue("code")
		p.logf("GET /echo?msg=%s&code=%s", msg, code)
		if code != "" {
			n, err := strconv.Atoi(code)
			if err != nil {
				fmt.Fprintf(w, "argument 'code' must be an integer or empty, got %q\n", code)
				return
			}
			w.WriteHeader(n)
		}
		fmt.Fprint(w, msg)
	})
	mux.HandleFunc("/header", func(w http.ResponseWriter, r *http.Request) {
		if key := r.FormValue("key"); key != "" {
			p.logf("GET /header?key=%s", key)
			fmt.Fprint(w, r.Header.Get(key))
			return
		}
		p.logf("GET /header")
		json.NewEncoder(w).Encode(r.Header)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		p.logf("GET /healthz")
		if ready.Load() {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusPreconditionFailed)
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		p.logf("GET /readyz")
		switch {
		case p.terminating():
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, "shutting down")
		case ready.Load():
			fmt.Fprint(w, "ok")
		default:
			w.WriteHeader(http.StatusPreconditionFailed)
		}
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		loc, code := r.FormValue("location"), r.FormValue("code")
		p.logf("GET /redirect?location=%s&code=%s", loc, code)
		n, err := strconv.Atoi(code)
		if err != nil {
			n = http.StatusFound
		}
		http.Redirect(w, r, loc, n)
	})
	mux.HandleFunc("/shell", func(w http.ResponseWriter, r *http.Request) {
		cmd := r.FormValue("shellCommand")
		if cmd == "" {
			cmd = r.FormValue("cmd")
		}
		p.logf("GET /shell?cmd=%s", cmd)
		out, code, err := p.shellOutput(r.Context(), []string{"/bin/sh", "-c", cmd})
		output := map[string]string{}
		if len(out) > 0 {
			output["output"] = string(out)
		}
		switch {
		case err != nil:
			output["error"] = "signal: killed"
		case code != 0:
			output["error"] = fmt.Sprintf("exit status %d", code)
		}
		p.logf("Output: %s", output)
		json.NewEncoder(w).Encode(output)
	})
	mux.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) {
		codeStr, wait := r.FormValue("code"), r.FormValue("wait")
		p.logf("GET /exit?code=%s&timeout=%s&wait=%s", codeStr, r.FormValue("timeout"), wait)
		code, err := strconv.Atoi(codeStr)
		if err != nil && codeStr != "" || code < 0 || code > 127 {
			fmt.Fprintf(w, "argument 'code' must be an integer [0-127] or empty, got %q\n", codeStr)
			return
		}
		d, _ := time.ParseDuration(wait)
		p.logf("Will begin shutdown in %s, allowing %s for connections to close, then will exit with %d", d, r.FormValue("timeout"), code)
		exitAfterResponse(w, p, d, code)
	})
	mux.HandleFunc("/shutdown", func(w http.ResponseWriter, r *http.Request) {
		p.logf("GET /shutdown")
		exitAfterResponse(w, p, 0, 0)
	})
	mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		// Not an agnhost endpoint: N bytes of the stream described at
		// bytesBlock, for bulk transfers that can be checked.
		n, err := strconv.ParseInt(r.FormValue("n"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "argument 'n' must be a non-negative integer", http.StatusBadRequest)
			return
		}
		var seed uint64
		if s := r.FormValue("seed"); s != "" {
			if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
				http.Error(w, "argument 'seed' must be a non-negative integer", http.StatusBadRequest)
				return
			}
		}
		table := bytesTable(seed)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		buf := copyBufs.Get().(*[]byte)
		defer copyBufs.Put(buf)
		block := (*buf)[:bytesBlock]
		for b := uint64(0); n > 0; b++ {
			fillBytesBlock(block, table, b)
			chunk := min(n, bytesBlock)
			if _, err := w.Write(block[:chunk]); err != nil {
				return
			}
			n -= chunk
		}
	})
	mux.HandleFunc("/delay", func(w http.ResponseWriter, r *http.Request) {
		// Not an agnhost endpoint: a slow answer for timeout tests. While it
		// waits it reads none of the request body, so a large POST here is
		// a connection whose bytes the pod never takes.
		ms, err := strconv.ParseInt(r.URL.Query().Get("ms"), 10, 64)
		if err != nil || ms < 0 {
			http.Error(w, "argument 'ms' must be a non-negative integer", http.StatusBadRequest)
			return
		}
		p.logf("%s /delay?ms=%d", r.Method, ms)
		if !p.sleep(time.Duration(ms) * time.Millisecond) {
			return
		}
		fmt.Fprintf(w, "delayed %d ms", ms)
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			http.Error(w, "POST the data to upload", http.StatusMethodNotAllowed)
			return
		}
		buf := copyBufs.Get().(*[]byte)
		n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r.Body}, *buf)
		copyBufs.Put(buf)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, n)
	})
	return mux
}

// exitAfterResponse answers (empty 200) and then ends the program, so the
// caller sees its request succeed before the container goes away.
func exitAfterResponse(w http.ResponseWriter, p *proc, wait time.Duration, code int) {
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusOK)
	http.NewResponseController(w).Flush()
	go func() {
		p.sleep(wait + 100*time.Millisecond)
		p.exit(code)
	}()
}

// pause -----------------------------------------------------------------------

// runPause waits for SIGTERM, then (after --delay-shutdown=N seconds)
// exits 2, logging as upstream (whose "Sleeping ..." has no newline).
func runPause(p *proc) {
	delay := intFlag(p.args, "delay-shutdown", 0)
	p.println("Paused")
	p.handleTerm(func() {
		if delay > 0 {
			p.printPartial(fmt.Sprintf("Sleeping %d seconds before exit ...", delay))
			if !p.sleep(time.Duration(delay) * time.Second) {
				return
			}
		}
		p.println("exiting 2")
		p.exit(2)
	})
}

// test-webserver ----------------------------------------------------------------

// runTestWebserver serves the container's files on --port (80), with
// upstream's headers; If-Modified-Since is ignored, as upstream.
func runTestWebserver(p *proc) {
	port := int32(intFlag(p.args, "port", 80))
	files := http.StripPrefix("/", http.FileServer(http.Dir(p.fsRoot())))
	p.serveHTTP(port, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "private")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		w.Header().Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		w.Header().Set("Access-Control-Allow-Headers", "DNT,X-Mx-ReqToken,Keep-Alive,User-Agent,X-Requested-With,Cache-Control,Content-Type")
		r.Header.Del("If-Modified-Since")
		files.ServeHTTP(w, r)
	}))
}

// serve-hostname -------------------------------------------------------------

func runServeHostname(p *proc) {
	port := int32(intFlag(p.args, "port", 9376))
	if boolFlag(p.args, "tcp", false) {
		ln, err := p.listen(port)
		if err != nil {
			p.logf("Error from net.Listen(): %s", err)
			p.exit(1)
			return
		}
		go func() {
			for {
				c, err := ln.AcceptTracked()
				if err != nil {
					return
				}
				p.logf("TCP request from %s", c.RemoteAddr())
				c.Write([]byte(p.hostname))
				c.Close()
			}
		}()
	} else {
		closeConns := boolFlag(p.args, "close", false)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p.logf("HTTP request from %s", r.RemoteAddr)
			if closeConns {
				w.Header().Add("Connection", "close")
			}
			fmt.Fprint(w, p.hostname)
		})
		if !p.serveHTTP(port, h) {
			return
		}
	}
	p.logf("Serving on port %d.", port)
}

// tcp-reset ------------------------------------------------------------------

// runTCPReset answers every connection with a TCP RST after its first read.
func runTCPReset(p *proc) {
	port := int32(intFlag(p.args, "port", 8080))
	ln, err := p.listen(port)
	if err != nil {
		p.logf("Error from net.Listen(): %s", err)
		p.exit(1)
		return
	}
	go func() {
		for {
			c, err := ln.AcceptTracked()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 4096)
				c.Read(buf)
				c.SetLinger(0) // close with RST instead of FIN
				c.Close()
				p.logf("TCP request from %s", c.RemoteAddr())
			}()
		}
	}()
	p.logf("Serving on port %d.", port)
}

// port-forward-tester --------------------------------------------------------

// runPortForwardTester accepts one connection, checks the client's data,
// sends the configured chunks, closes and exits, logging each step like
// agnhost's port-forward-tester (exit codes 1..4 as upstream).
func runPortForwardTester(p *proc) {
	port, err := strconv.Atoi(p.env["BIND_PORT"])
	if err != nil || port < 1 || port > 65535 {
		p.println(fmt.Sprintf("Error listening: invalid BIND_PORT %q", p.env["BIND_PORT"]))
		p.exit(1)
		return
	}
	ln, err := p.listen(int32(port))
	if err != nil {
		p.println(fmt.Sprintf("Error listening: %v", err))
		p.exit(1)
		return
	}
	go func() {
		conn, err := ln.AcceptTracked()
		if err != nil {
			p.println(fmt.Sprintf("Error accepting connection: %v", err))
			p.exit(1)
			return
		}
		p.println("Accepted client connection")
		if want := p.env["EXPECTED_CLIENT_DATA"]; want != "" {
			buf := make([]byte, len(want))
			n, err := io.ReadFull(conn, buf)
			if n != len(want) {
				p.println(fmt.Sprintf("Expected to read %d bytes from client, but got %d instead. err=%v", len(want), n, err))
				p.exit(2)
				return
			}
			if string(buf) != want {
				p.println(fmt.Sprintf("Expect to read %q, but got %q. err=%v", want, buf, err))
				p.exit(3)
				return
			}
			p.println("Received expected client data")
		}
		var vals [3]int
		for i, name := range []string{"CHUNKS", "CHUNK_SIZE", "CHUNK_INTERVAL"} {
			if vals[i], err = strconv.Atoi(p.env[name]); err != nil {
				p.println(fmt.Sprintf("Error parsing %s %q: %v", name, p.env[name], err))
				p.exit(1)
				return
			}
		}
		chunks, size, interval := vals[0], vals[1], vals[2]
		data := []byte(strings.Repeat("x", size))
		for i := 0; i < chunks; i++ {
			if n, err := conn.Write(data); n != size {
				p.println(fmt.Sprintf("Expected to write %d bytes from client, but wrote %d instead. err=%v", size, n, err))
				p.exit(4)
				return
			}
			if i+1 < chunks && !p.sleep(time.Duration(interval)*time.Millisecond) {
				return
			}
		}
		p.println("Shutting down connection")
		// Half-close, give the client time to see the FIN, then close.
		conn.CloseWrite()
		p.sleep(500 * time.Millisecond)
		conn.Close()
		p.println("Done")
		p.exit(0)
	}()
}

// A net.Conn check keeps trackedConn honest about what programs rely on.
var _ interface {
	net.Conn
	CloseWrite() error
	SetLinger(int) error
} = (*trackedConn)(nil)
