package main

// The stand-in programs. Log texts follow upstream agnhost, since e2e-style
// tests grep `kubectl logs` for them.

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
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
	for _, port := range p.ports {
		if !p.serveHTTP(port, netexecMux(p)) {
			return
		}
		p.logf("Started HTTP server on port %d", port)
	}
}

// netexec ------------------------------------------------------------------

func runNetexec(p *proc) {
	port := int32(intFlag(p.args, "http-port", 8080))
	if p.serveHTTP(port, netexecMux(p)) {
		p.logf("Started HTTP server on port %d", port)
	}
}

// xBuf is shared read-only by every /bytes response.
var xBuf = []byte(strings.Repeat("x", 64<<10))

// copyBufs are the 64 KiB buffers of the hot paths (uploads, port-forward).
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 128<<10); return &b }}

func netexecMux(p *proc) *http.ServeMux {
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
		w.WriteHeader(http.StatusOK)
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
		p.logf("GET /shell?cmd=%s", r.FormValue("cmd"))
		w.WriteHeader(http.StatusExpectationFailed)
		fmt.Fprint(w, `{"error":"no shell in the test cluster's stand-in"}`)
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
		p.logf("Will begin shutdown in %s, then will exit with %d", d, code)
		exitAfterResponse(w, p, d, code)
	})
	mux.HandleFunc("/shutdown", func(w http.ResponseWriter, r *http.Request) {
		p.logf("GET /shutdown")
		exitAfterResponse(w, p, 0, 0)
	})
	mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.FormValue("n"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "argument 'n' must be a non-negative integer", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		for n > 0 {
			chunk := min(n, int64(len(xBuf)))
			if _, err := w.Write(xBuf[:chunk]); err != nil {
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
