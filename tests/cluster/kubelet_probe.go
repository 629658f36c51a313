package main

// Readiness probes, run as the kubelet's prober does (pkg/kubelet/prober,
// worker.go): one worker per container run, a probe every periodSeconds
// once the container has run initialDelaySeconds; readiness starts false
// and flips only after successThreshold consecutive successes or
// failureThreshold consecutive failures; a probe that takes longer than
// timeoutSeconds fails. Handlers:
//
//   - httpGet: a GET to the pod's listener for the port (a name resolves
//     through the container's ports); 200-399 succeeds, redirects are not
//     followed, HTTPS skips verification, User-Agent kube-probe/1.37;
//   - tcpSocket: a TCP connect;
//   - exec: the command runs in the container's shell (agnhost_shell.go);
//     exit status 0 succeeds;
//   - grpc: not supported, always fails (no stand-in serves gRPC);
//   - a probe without a handler (the apiserver rejects those) succeeds.
//
// Liveness and startup probes are not run.

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// probeDefault is v if set, else def (the apiserver defaults these fields;
// objects from a fake clientset may leave them zero).
func probeDefault(v, def int32) int32 {
	if v > 0 {
		return v
	}
	return def
}

// runReadinessProbe is the prober worker for one run (p) of container c.
// It returns when that run ends or the pod's worker finishes.
func (r *podRecord) runReadinessProbe(c *ctr, p *proc, spec corev1.Probe, started time.Time) {
	period := time.Duration(probeDefault(spec.PeriodSeconds, 10)) * time.Second
	timeout := time.Duration(probeDefault(spec.TimeoutSeconds, 1)) * time.Second
	successes, failures := probeDefault(spec.SuccessThreshold, 1), probeDefault(spec.FailureThreshold, 3)
	ticker := time.NewTicker(period)
	defer ticker.Stop()
	ready, last, run := false, false, int32(0)
	for {
		// As the kubelet: the delay counts whole seconds since the start.
		if int32(time.Since(started).Seconds()) >= spec.InitialDelaySeconds {
			ok, msg := r.probe(c, p, &spec, timeout)
			if ok == last && run > 0 {
				run++
			} else {
				last, run = ok, 1
			}
			if ok != ready && ((ok && run >= successes) || (!ok && run >= failures)) {
				ready = ok
				r.setProbeReady(c, p, ready, msg)
			}
		}
		select {
		case <-ticker.C:
		case <-p.done:
			return
		case <-r.finished:
			return
		}
	}
}

// setProbeReady records run p's readiness and wakes the pod worker.
func (r *podRecord) setProbeReady(c *ctr, p *proc, ready bool, msg string) {
	r.mu.Lock()
	current := c.proc == p && c.running
	if current {
		c.probeReady = ready
	}
	r.mu.Unlock()
	if !current {
		return
	}
	if ready {
		kubeletLog.Printf("pod %s: container %s: readiness probe succeeded", r.key, c.spec.Name)
	} else {
		kubeletLog.Printf("pod %s: container %s: readiness probe failed: %s", r.key, c.spec.Name, msg)
	}
	select {
	case r.probeKick <- struct{}{}:
	default:
	}
}

// probe runs one probe; msg says why it failed.
func (r *podRecord) probe(c *ctr, p *proc, spec *corev1.Probe, timeout time.Duration) (ok bool, msg string) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	switch h := spec.ProbeHandler; {
	case h.Exec != nil:
		out, code, err := p.shellOutput(ctx, h.Exec.Command)
		if err != nil {
			return false, fmt.Sprintf("command %q timed out", strings.Join(h.Exec.Command, " "))
		}
		return code == 0, fmt.Sprintf("exit status %d: %s", code, out)
	case h.HTTPGet != nil:
		return r.httpProbe(ctx, c, h.HTTPGet)
	case h.TCPSocket != nil:
		port, err := containerPort(c, h.TCPSocket.Port)
		if err != nil {
			return false, err.Error()
		}
		addr := r.portAddr(port)
		if addr == "" {
			return false, fmt.Sprintf("dial tcp %s:%d: connect: connection refused", r.ip, port)
		}
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp4", addr)
		if err != nil {
			return false, err.Error()
		}
		conn.Close()
		return true, ""
	case h.GRPC != nil:
		return false, "gRPC probes are not supported by the test kubelet"
	}
	return true, ""
}

func (r *podRecord) httpProbe(ctx context.Context, c *ctr, g *corev1.HTTPGetAction) (bool, string) {
	port, err := containerPort(c, g.Port)
	if err != nil {
		return false, err.Error()
	}
	addr := r.portAddr(port)
	if addr == "" {
		return false, fmt.Sprintf("Get %q: dial tcp %s:%d: connect: connection refused", g.Path, r.ip, port)
	}
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	p := g.Path
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+p, nil)
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("User-Agent", "kube-probe/1.37")
	req.Header.Set("Accept", "*/*")
	for _, h := range g.HTTPHeaders {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
		} else {
			req.Header.Add(h.Name, h.Value)
		}
	}
	client := &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err.Error()
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 10<<10))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return true, ""
	}
	return false, fmt.Sprintf("HTTP probe failed with statuscode: %d (%s)", resp.StatusCode, body)
}

// containerPort resolves a probe's port: a number, or the name of one of
// the container's ports.
func containerPort(c *ctr, port intstr.IntOrString) (int32, error) {
	if port.Type == intstr.Int {
		return port.IntVal, nil
	}
	for _, p := range c.spec.Ports {
		if p.Name == port.StrVal {
			return p.ContainerPort, nil
		}
	}
	return 0, fmt.Errorf("couldn't find port %q in container %s", port.StrVal, c.spec.Name)
}
