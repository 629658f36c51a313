package main

// Each node's kubelet API on 127.0.0.1:<port>, the part the apiserver
// proxies to: port-forward (SPDY and WebSocket, through the kubelet's own
// streaming package), container logs and /healthz. Any client is accepted:
// the apiserver connects without a client certificate.

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
)

type connKey struct{}

func (k *kubelet) serveNode(n *testNode, cert tls.Certificate) (shutdown func(), err error) {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", n.port))
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	pf := func(w http.ResponseWriter, r *http.Request) { k.servePortForward(n, w, r) }
	mux.HandleFunc("/portForward/{namespace}/{pod}", pf)
	mux.HandleFunc("/portForward/{namespace}/{pod}/{uid}", pf)
	mux.HandleFunc("/containerLogs/{namespace}/{pod}/{container}", func(w http.ResponseWriter, r *http.Request) {
		k.serveLogs(n, w, r)
	})
	srv := &http.Server{
		Handler: mux,
		// HTTP/1.1 only: upgrades (SPDY, WebSocket) need it, and it keeps
		// one TCP connection per port-forward session for drop-connections.
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}},
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
		ErrorLog:          log.New(os.Stderr, "kubelet "+n.name+" http: ", log.LstdFlags),
		ReadHeaderTimeout: 30 * time.Second,
	}
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != http.ErrServerClosed {
			kubeletLog.Printf("node %s: server: %v", n.name, err)
		}
	}()
	return func() { srv.Close() }, nil
}

// Port-forward -------------------------------------------------------------

func (k *kubelet) servePortForward(n *testNode, w http.ResponseWriter, req *http.Request) {
	ns, name, uid := req.PathValue("namespace"), req.PathValue("pod"), req.PathValue("uid")
	r := k.lookup(n.name, ns, name)
	if r == nil {
		http.Error(w, "pod does not exist", http.StatusNotFound)
		return
	}
	if uid != "" && types.UID(uid) != r.uid {
		http.Error(w, "pod not found", http.StatusNotFound)
		return
	}
	opts, err := portforward.NewV4Options(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// The session owns this TCP connection once upgraded; closing it is how
	// drop-connections cuts the apiserver side.
	if c, ok := req.Context().Value(connKey{}).(net.Conn); ok {
		if tc, ok := c.(*tls.Conn); ok {
			c = tc.NetConn()
		}
		defer r.track(c)()
	}
	portforward.ServePortForward(w, req, forwarder{k}, r.sandbox, "", opts,
		k.streamIdle, 30*time.Second, portforward.SupportedProtocols)
}

// forwarder plays the container runtime: the streaming server calls it once
// per forwarded connection, with the sandbox id we passed as the pod name.
type forwarder struct{ k *kubelet }

func (f forwarder) PortForward(_ context.Context, sandbox, _ string, port int32, stream io.ReadWriteCloser) error {
	r := f.k.lookupSandbox(sandbox)
	if r == nil {
		return fmt.Errorf("failed to find sandbox %q in store: not found", sandbox)
	}
	return r.forward(port, stream)
}

func (r *podRecord) forward(port int32, stream io.ReadWriteCloser) error {
	addr := r.portAddr(port)
	if addr == "" {
		return connectError(string(r.uid), port)
	}
	conn, err := net.DialTimeout("tcp4", addr, 5*time.Second)
	if err != nil {
		return connectError(string(r.uid), port)
	}
	tc := conn.(*net.TCPConn)
	defer r.track(tc)()
	return pipe(tc, stream)
}

// connectError is containerd's message when nothing listens on the port.
func connectError(netns string, port int32) error {
	return fmt.Errorf("failed to connect to localhost:%d inside namespace %q, IPv4: dial tcp4 127.0.0.1:%d: connect: connection refused IPv6 dial tcp6 [::1]:%d: connect: connection refused ", port, netns, port, port)
}

// pipe copies both ways between a port-forward stream and the stand-in.
// When the client finishes sending, the stand-in gets a half-close (FIN)
// and its reply keeps flowing until it closes, as socat does. The copies
// use our own large buffers (the struct wrappers hide ReadFrom/WriteTo,
// which would fall back to 32 KiB ones). An error on the stand-in's side
// (e.g. tcp-reset's RST) is returned so the client sees it, like
// containerd; one caused by the client's side going away is not, since
// kubectl ends the whole session on any reported error.
func pipe(conn *net.TCPConn, stream io.ReadWriteCloser) error {
	defer conn.Close()
	var clientFailed atomic.Bool
	go func() {
		buf := copyBufs.Get().(*[]byte)
		defer copyBufs.Put(buf)
		_, err := io.CopyBuffer(struct{ io.Writer }{conn}, clientReader{stream, &clientFailed}, *buf)
		if err != nil {
			conn.Close()
		} else {
			conn.CloseWrite()
		}
	}()
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	_, err := io.CopyBuffer(clientWriter{stream, &clientFailed}, struct{ io.Reader }{conn}, *buf)
	if clientFailed.Load() {
		return nil
	}
	return err
}

// clientReader and clientWriter note failures of the client's stream.
type clientReader struct {
	r      io.Reader
	failed *atomic.Bool
}

func (c clientReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		c.failed.Store(true)
	}
	return n, err
}

type clientWriter struct {
	w      io.Writer
	failed *atomic.Bool
}

func (c clientWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil {
		c.failed.Store(true)
	}
	return n, err
}

// Container logs -------------------------------------------------------------

func (k *kubelet) serveLogs(n *testNode, w http.ResponseWriter, req *http.Request) {
	ns, name, cname := req.PathValue("namespace"), req.PathValue("pod"), req.PathValue("container")
	r := k.lookup(n.name, ns, name)
	if r == nil {
		http.Error(w, fmt.Sprintf("pod %q does not exist", name), http.StatusNotFound)
		return
	}
	var c *ctr
	r.mu.Lock()
	for _, x := range append(append([]*ctr{}, r.init...), r.ctrs...) {
		if x.spec.Name == cname {
			c = x
		}
	}
	var attempt int32
	if c != nil {
		attempt = c.restarts
	}
	r.mu.Unlock()
	if c == nil {
		http.Error(w, fmt.Sprintf("container %q not found in pod %q", cname, name), http.StatusNotFound)
		return
	}

	q := req.URL.Query()
	follow, previous, stamps := q.Get("follow") == "true", q.Get("previous") == "true", q.Get("timestamps") == "true"
	tail, err := strconv.Atoi(q.Get("tailLines"))
	if err != nil {
		tail = -1
	}
	limit, err := strconv.ParseInt(q.Get("limitBytes"), 10, 64)
	if err != nil || limit <= 0 {
		limit = -1
	}
	var since time.Time
	if s, err := strconv.Atoi(q.Get("sinceSeconds")); err == nil {
		since = time.Now().Add(-time.Duration(s) * time.Second)
	} else if t, err := time.Parse(time.RFC3339, q.Get("sinceTime")); err == nil {
		since = t
	}
	if previous {
		if attempt == 0 {
			http.Error(w, fmt.Sprintf("previous terminated container %q in pod %q not found", cname, name), http.StatusBadRequest)
			return
		}
		attempt--
	}

	lines, next, ended, changed := c.logs.since(0, attempt)
	keep := lines[:0]
	for _, l := range lines {
		if (!previous || l.attempt == attempt) && !l.t.Before(since) {
			keep = append(keep, l)
		}
	}
	if tail >= 0 && len(keep) > tail {
		keep = keep[len(keep)-tail:]
	}
	w.Header().Set("Content-Type", "text/plain")
	rc := http.NewResponseController(w)
	write := func(ls []logLine) bool {
		var b bytes.Buffer
		for _, l := range ls {
			if stamps {
				b.WriteString(l.t.UTC().Format(time.RFC3339Nano) + " ")
			}
			b.WriteString(l.text)
			if !l.partial {
				b.WriteByte('\n')
			}
		}
		out := b.Bytes()
		if limit >= 0 && int64(len(out)) > limit {
			out = out[:limit]
		}
		n, err := w.Write(out)
		limit -= int64(n)
		return err == nil && limit != 0
	}
	if !write(keep) || !follow || previous || ended {
		return
	}
	for {
		rc.Flush()
		select {
		case <-changed:
		case <-req.Context().Done():
			return
		}
		lines, next, ended, changed = c.logs.since(next, attempt)
		if !write(lines) || ended {
			return
		}
	}
}
