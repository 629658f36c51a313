package main

// Kubelet tests without an apiserver: the pod lifecycle runs against
// client-go's fake clientset, and port-forward goes through the real
// streaming server over HTTPS with client-go's SPDY port-forwarder and a
// WebSocket (v4.channel.k8s.io) client.

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/utils/ptr"
)

func TestIPAllocator(t *testing.T) {
	a := newIPAllocator(7)
	seen := map[string]bool{}
	var first string
	for i := range 600 {
		ip, err := a.allocate()
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = ip
		}
		if seen[ip] || !strings.HasPrefix(ip, "10.7.") || strings.HasSuffix(ip, ".0") || strings.HasSuffix(ip, ".255") {
			t.Fatalf("bad or duplicate IP %s", ip)
		}
		seen[ip] = true
	}
	// A released IP is not handed out again soon.
	a.release(first)
	if ip, _ := a.allocate(); ip == first {
		t.Errorf("released IP %s reused at once", first)
	}
	if a.reserve("10.7.0.2") || !a.reserve("10.7.200.1") || a.reserve("10.7.200.1") || a.reserve("10.8.0.1") || a.reserve("10.7.1.0") {
		t.Error("reserve accepted a taken or foreign IP, or refused a free one")
	}
	// Exhaustion is an error, not a loop or a duplicate.
	b := newIPAllocator(9)
	n := 0
	for ; ; n++ {
		if _, err := b.allocate(); err != nil {
			break
		}
	}
	if n != 256*254 {
		t.Errorf("allocated %d addresses, want %d", n, 256*254)
	}
}

func TestExpandVars(t *testing.T) {
	env := map[string]string{"A": "1", "PORT": "8080"}
	for in, want := range map[string]string{
		"--http-port=$(PORT)": "--http-port=8080", "$(A)$(B)": "1$(B)", "$$(A)": "$(A)", "x$": "x$", "$(A": "$(A",
	} {
		if got := expandVars(in, env); got != want {
			t.Errorf("expandVars(%q) = %q, want %q", in, got, want)
		}
	}
}

// testStream is a port-forward data stream: the test writes into up and
// reads down.
type testStream struct {
	io.Reader
	io.Writer
}

func (testStream) Close() error { return nil }

func TestPipeHalfClose(t *testing.T) {
	// A stand-in that reads to EOF, then answers with what it got.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		data, _ := io.ReadAll(c)
		fmt.Fprintf(c, "got %d bytes: %s", len(data), data[len(data)-5:])
		c.Close()
	}()
	conn, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	upR, upW := io.Pipe()
	downR, downW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := pipe(conn.(*net.TCPConn), testStream{upR, downW})
		downW.Close() // what the streaming server does when PortForward returns
		done <- err
	}()
	payload := strings.Repeat("z", 1<<20) + "hello"
	go func() {
		upW.Write([]byte(payload))
		upW.Close() // client EOF: must reach the stand-in as a half-close
	}()
	reply, _ := io.ReadAll(downR)
	if want := fmt.Sprintf("got %d bytes: hello", len(payload)); string(reply) != want {
		t.Errorf("reply %q, want %q", reply, want)
	}
	if err := <-done; err != nil {
		t.Errorf("pipe: %v", err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("stream reset") }

// A reset from the stand-in is reported to the client; a failure of the
// client's own stream is not (kubectl would end the whole session).
func TestPipeErrors(t *testing.T) {
	p := startTestProc(t, "tcp-reset", nil, nil)
	conn, err := net.Dial("tcp4", p.addr(8080))
	if err != nil {
		t.Fatal(err)
	}
	err = pipe(conn.(*net.TCPConn), testStream{strings.NewReader("hello"), io.Discard})
	if err == nil || !strings.Contains(err.Error(), "connection reset by peer") {
		t.Errorf("stand-in reset: got %v", err)
	}
	q := startTestProc(t, "netexec", nil, nil)
	conn, err = net.Dial("tcp4", q.addr(8080))
	if err != nil {
		t.Fatal(err)
	}
	req := "GET /bytes?n=1000000 HTTP/1.1\r\nHost: x\r\n\r\n"
	if err := pipe(conn.(*net.TCPConn), testStream{strings.NewReader(req), failingWriter{}}); err != nil {
		t.Errorf("client-side failure reported: %v", err)
	}
}

func TestForwardConnectionRefused(t *testing.T) {
	r := &podRecord{uid: "uid-1", fwd: map[io.Closer]struct{}{}}
	err := r.forward(8080, testStream{strings.NewReader(""), io.Discard})
	want := `failed to connect to localhost:8080 inside namespace "uid-1", IPv4: dial tcp4 127.0.0.1:8080: connect: connection refused`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %v\nwant prefix %s", err, want)
	}
}

// Fake-cluster helpers ---------------------------------------------------------

func testCert(t *testing.T) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubelet"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

type testKubelet struct {
	k       *kubelet
	cs      *fake.Clientset
	base    string // https://127.0.0.1:port
	podsDir string
}

func startTestKubelet(t *testing.T, objs ...runtime.Object) *testKubelet {
	return startTestKubeletIdle(t, 0, objs...)
}

// startTestKubeletIdle starts a test kubelet whose
// streamingConnectionIdleTimeout is idle (0 = none).
func startTestKubeletIdle(t *testing.T, idle time.Duration, objs ...runtime.Object) *testKubelet {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cs := fake.NewClientset(objs...)
	ctx, cancel := context.WithCancel(context.Background())
	podsDir := t.TempDir()
	k := newKubelet(ctx, cs, &kubeletConfig{cluster: "t", nodes: 1, ports: []int{port}, subnet: 7, streamIdle: idle}, podsDir)
	shutdown, err := k.serveNode(k.nodes[0], testCert(t))
	if err != nil {
		t.Fatal(err)
	}
	k.watchPods(ctx, k.nodes[0])
	t.Cleanup(func() {
		cancel()
		shutdown()
		k.waitPods(5 * time.Second)
	})
	return &testKubelet{k: k, cs: cs, base: fmt.Sprintf("https://127.0.0.1:%d", port), podsDir: podsDir}
}

func testPod(name string, policy corev1.RestartPolicy, c corev1.Container) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec:       corev1.PodSpec{NodeName: "t-node-1", RestartPolicy: policy, Containers: []corev1.Container{c}},
	}
}

func (tk *testKubelet) waitPod(t *testing.T, name, what string, ok func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pod, err := tk.cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && ok(pod) {
			return pod
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s: timed out waiting for %s (err %v, status %+v)", name, what, err, pod.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (tk *testKubelet) update(t *testing.T, name string, change func(*corev1.Pod)) {
	t.Helper()
	pod, err := tk.cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	change(pod)
	if _, err := tk.cs.CoreV1().Pods("default").Update(context.Background(), pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// stateAddr reads the pod's state file: what the benchmark does.
func (tk *testKubelet) stateAddr(t *testing.T, pod, port string) string {
	t.Helper()
	var st struct {
		UID   string            `json:"uid"`
		Ports map[string]string `json:"ports"`
	}
	data, err := os.ReadFile(filepath.Join(tk.podsDir, "default_"+pod+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ports[port]
}

func condition(pod *corev1.Pod, ct corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range pod.Status.Conditions {
		if c.Type == ct {
			return c.Status
		}
	}
	return ""
}

func isReady(p *corev1.Pod) bool { return condition(p, corev1.PodReady) == corev1.ConditionTrue }

var insecureClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}

// startForward runs client-go's SPDY port-forwarder (kubectl's fallback
// path) to the pod's port 8080 and returns the local port and the channel
// ForwardPorts' result arrives on.
func (tk *testKubelet) startForward(t *testing.T, pod string) (int, <-chan error) {
	t.Helper()
	rt, upgrader, err := spdy.RoundTripperFor(&rest.Config{TLSClientConfig: rest.TLSClientConfig{Insecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(tk.base + "/portForward/default/" + pod)
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, "POST", u)
	stop, ready := make(chan struct{}), make(chan struct{})
	fw, err := portforward.New(dialer, []string{"0:8080"}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- fw.ForwardPorts() }()
	t.Cleanup(func() { close(stop) })
	select {
	case <-ready:
	case err := <-errc:
		t.Fatalf("port-forward: %v", err)
	}
	ports, err := fw.GetPorts()
	if err != nil {
		t.Fatal(err)
	}
	return int(ports[0].Local), errc
}

func TestKubeletNodeRegistration(t *testing.T) {
	tk := startTestKubelet(t)
	n := tk.k.nodes[0]
	if _, err := tk.k.registerNode(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	// A second registration (a restarted kubelet) adopts the node.
	if _, err := tk.k.registerNode(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	node, err := tk.cs.CoreV1().Nodes().Get(context.Background(), "t-node-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if node.Labels["kubernetes.io/hostname"] != "t-node-1" || int(node.Status.DaemonEndpoints.KubeletEndpoint.Port) != n.port ||
		len(node.Spec.Taints) != 0 || node.Status.NodeInfo.KubeletVersion != kubeletVersion {
		t.Errorf("node: %+v", node)
	}
	ready := false
	for _, c := range node.Status.Conditions {
		ready = ready || c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue
	}
	if !ready {
		t.Errorf("node not Ready: %+v", node.Status.Conditions)
	}
	lease, err := tk.cs.CoordinationV1().Leases("kube-node-lease").Get(context.Background(), "t-node-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *lease.Spec.HolderIdentity != "t-node-1" || *lease.Spec.LeaseDurationSeconds != 40 || lease.OwnerReferences[0].Kind != "Node" {
		t.Errorf("lease: %+v", lease)
	}
}

func TestKubeletPodLifecycle(t *testing.T) {
	netexec := corev1.Container{
		Name: "c", Image: "registry.k8s.io/e2e-test-images/agnhost:2.53",
		Args:           []string{"netexec", "--http-port=8080"},
		ReadinessProbe: &corev1.Probe{InitialDelaySeconds: 1, PeriodSeconds: 1,
			ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}}},
	}
	never := netexec
	never.ReadinessProbe = nil
	tester := corev1.Container{
		Name: "portforwardtester", Image: "registry.k8s.io/e2e-test-images/agnhost:2.53", Args: []string{"port-forward-tester"},
		Env: []corev1.EnvVar{{Name: "BIND_PORT", Value: "80"}, {Name: "EXPECTED_CLIENT_DATA", Value: "abc"},
			{Name: "CHUNKS", Value: "2"}, {Name: "CHUNK_SIZE", Value: "3"}, {Name: "CHUNK_INTERVAL", Value: "1"}},
	}
	tk := startTestKubelet(t,
		testPod("a", corev1.RestartPolicyAlways, netexec),
		testPod("b", corev1.RestartPolicyNever, never),
		testPod("c", corev1.RestartPolicyNever, tester))
	ctx := context.Background()

	// Running at once, Ready only after the readiness probe's initial delay.
	pod := tk.waitPod(t, "a", "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	if isReady(pod) {
		t.Error("pod a Ready before its readiness delay")
	}
	if !strings.HasPrefix(pod.Status.PodIP, "10.7.") || pod.Status.HostIP != "127.0.0.1" || len(pod.Status.ContainerStatuses) != 1 {
		t.Errorf("status: %+v", pod.Status)
	}
	cs := pod.Status.ContainerStatuses[0]
	if cs.State.Running == nil || !strings.HasPrefix(cs.ContainerID, "tender://") || !strings.HasPrefix(cs.ImageID, "docker.io/tender/fake@sha256:") {
		t.Errorf("container status: %+v", cs)
	}
	tk.waitPod(t, "a", "Ready", isReady)

	// SPDY port-forward, with a large download through it.
	local, fwdErr := tk.startForward(t, "a")
	if _, body := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/hostname", local)); body != "a" {
		t.Errorf("hostname through port-forward = %q", body)
	}
	if _, body := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/bytes?n=%d", local, 8<<20)); len(body) != 8<<20 {
		t.Errorf("/bytes through port-forward: %d bytes", len(body))
	}

	// WebSocket v4.channel.k8s.io port-forward.
	if got := wsGetHostname(t, tk.base, "a"); !strings.HasSuffix(got, "\r\n\r\na") {
		t.Errorf("hostname over websocket: %q", got)
	}

	// Logs, plain and followed.
	if _, body := httpGetTLS(t, tk.base+"/containerLogs/default/a/c"); !strings.Contains(body, "Started HTTP server on port 8080") || !strings.Contains(body, "GET /hostname") {
		t.Errorf("logs: %q", body)
	}
	if _, body := httpGetTLS(t, tk.base+"/containerLogs/default/a/c?tailLines=1&timestamps=true"); strings.Count(body, "\n") != 1 || !strings.Contains(body, "Z ") {
		t.Errorf("tailLines=1: %q", body)
	}
	followLogs(t, tk, "a", "c", fmt.Sprintf("http://127.0.0.1:%d/echo?msg=followed", local), "msg=followed")

	// The ready annotation holds the pod not Ready while set.
	tk.update(t, "a", func(p *corev1.Pod) { p.Annotations = map[string]string{readyAnnotation: "false"} })
	tk.waitPod(t, "a", "not Ready", func(p *corev1.Pod) bool { return !isReady(p) })
	tk.update(t, "a", func(p *corev1.Pod) { p.Annotations = nil })
	tk.waitPod(t, "a", "Ready again", isReady)

	// drop-connections cuts the port-forward session but not the pod.
	tk.update(t, "a", func(p *corev1.Pod) { p.Annotations = map[string]string{dropAnnotation: "1"} })
	select {
	case err := <-fwdErr:
		if !errors.Is(err, portforward.ErrLostConnectionToPod) {
			t.Errorf("port-forward ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("port-forward survived drop-connections")
	}
	if _, body := httpGet(t, "http://"+tk.stateAddr(t, "a", "8080")+"/hostname"); body != "a" {
		t.Errorf("pod stopped answering after drop: %q", body)
	}

	// Exit under restartPolicy Always: restarted after 1 s, history kept.
	httpGet(t, "http://"+tk.stateAddr(t, "a", "8080")+"/exit?code=0")
	pod = tk.waitPod(t, "a", "restart", func(p *corev1.Pod) bool {
		s := p.Status.ContainerStatuses[0]
		return s.RestartCount == 1 && s.State.Running != nil
	})
	if last := pod.Status.ContainerStatuses[0].LastTerminationState.Terminated; last == nil || last.Reason != "Completed" {
		t.Errorf("lastState: %+v", pod.Status.ContainerStatuses[0].LastTerminationState)
	}
	if _, body := httpGetTLS(t, tk.base+"/containerLogs/default/a/c?previous=true"); !strings.Contains(body, "GET /exit?code=0") {
		t.Errorf("previous logs: %q", body)
	}

	// Exit under restartPolicy Never: the pod fails.
	tk.waitPod(t, "b", "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	httpGet(t, "http://"+tk.stateAddr(t, "b", "8080")+"/exit?code=3")
	pod = tk.waitPod(t, "b", "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if term := pod.Status.ContainerStatuses[0].State.Terminated; term == nil || term.ExitCode != 3 || term.Reason != "Error" {
		t.Errorf("terminated state: %+v", pod.Status.ContainerStatuses[0].State)
	}

	// port-forward-tester through SPDY: the e2e test's exchange and logs.
	tk.waitPod(t, "c", "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	testerExchange(t, tk)
	tk.waitPod(t, "c", "Succeeded", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	_, logs := httpGetTLS(t, tk.base+"/containerLogs/default/c/portforwardtester")
	if logs != "Accepted client connection\nReceived expected client data\nShutting down connection\nDone\n" {
		t.Errorf("tester logs: %q", logs)
	}

	// Graceful deletion: served during the grace period, then a terminal
	// status and a UID-guarded delete with grace 0.
	addr := tk.stateAddr(t, "a", "8080")
	_, fwdErr = tk.startForward(t, "a")
	tk.cs.ClearActions()
	tk.update(t, "a", func(p *corev1.Pod) {
		p.DeletionTimestamp = ptr.To(metav1.Now())
		p.DeletionGracePeriodSeconds = ptr.To[int64](1)
	})
	time.Sleep(300 * time.Millisecond)
	if _, body := httpGet(t, "http://"+addr+"/hostname"); body != "a" {
		t.Errorf("not served during grace period: %q", body)
	}
	waitGone(t, tk, "a")
	var final *corev1.Pod
	var del k8stesting.DeleteActionImpl
	for _, a := range tk.cs.Actions() {
		switch a := a.(type) {
		case k8stesting.UpdateActionImpl:
			if a.GetSubresource() == "status" {
				final = a.GetObject().(*corev1.Pod)
			}
		case k8stesting.DeleteActionImpl:
			del = a
		}
	}
	if final == nil || final.Status.Phase != corev1.PodSucceeded || final.Status.ContainerStatuses[0].State.Terminated == nil || isReady(final) {
		t.Errorf("final status: %+v", final)
	}
	if del.DeleteOptions.GracePeriodSeconds == nil || *del.DeleteOptions.GracePeriodSeconds != 0 ||
		del.DeleteOptions.Preconditions == nil || *del.DeleteOptions.Preconditions.UID != "uid-a" {
		t.Errorf("delete options: %+v", del.DeleteOptions)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("stand-in still listening after deletion")
	}
	select { // the pod's sandbox is gone, so is the port-forward session
	case <-fwdErr:
	case <-time.After(5 * time.Second):
		t.Error("port-forward session outlived the pod")
	}

	// A force delete (the object vanishes) stops the containers at once.
	addr = tk.stateAddr(t, "b", "8080")
	tk.cs.CoreV1().Pods("default").Delete(ctx, "b", metav1.DeleteOptions{})
	waitGone(t, tk, "b")
}

// waitGone waits for the pod object and its state file to disappear.
func waitGone(t *testing.T, tk *testKubelet, name string) {
	t.Helper()
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		_, err := tk.cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		_, ferr := os.Stat(filepath.Join(tk.podsDir, "default_"+name+".json"))
		if apierrors.IsNotFound(err) && os.IsNotExist(ferr) {
			return
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("pod %s not gone (get: %v, state file: %v)", name, err, ferr)
		}
	}
}

func httpGetTLS(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := insecureClient.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// followLogs checks that ?follow=true streams a line logged after the
// request started.
func followLogs(t *testing.T, tk *testKubelet, pod, ctr, trigger, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", tk.base+"/containerLogs/default/"+pod+"/"+ctr+"?follow=true&tailLines=0", nil)
	resp, err := insecureClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	httpGet(t, trigger)
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if !strings.Contains(line, want) {
		t.Errorf("followed line %q (%v), want %q", line, err, want)
	}
}

// testerExchange plays the upstream e2e client against port-forward-tester.
func testerExchange(t *testing.T, tk *testKubelet) {
	t.Helper()
	rt, upgrader, _ := spdy.RoundTripperFor(&rest.Config{TLSClientConfig: rest.TLSClientConfig{Insecure: true}})
	u, _ := url.Parse(tk.base + "/portForward/default/c")
	stop, ready := make(chan struct{}), make(chan struct{})
	defer close(stop)
	fw, _ := portforward.New(spdy.NewDialer(upgrader, &http.Client{Transport: rt}, "POST", u), []string{"0:80"}, stop, ready, io.Discard, io.Discard)
	go fw.ForwardPorts()
	<-ready
	ports, _ := fw.GetPorts()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0].Local))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("abc"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(c); string(b) != "xxxxxx" {
		t.Errorf("tester sent %q (%v)", b, err)
	}
}

// wsGetHostname does GET /hostname over a v4.channel.k8s.io WebSocket
// port-forward: channel 0 carries data, 1 errors; each starts with the port.
func wsGetHostname(t *testing.T, base, pod string) string {
	t.Helper()
	d := websocket.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, Subprotocols: []string{"v4.channel.k8s.io"}}
	ws, resp, err := d.Dial(strings.Replace(base, "https", "wss", 1)+"/portForward/default/"+pod+"?port=8080", nil)
	if err != nil {
		if resp != nil {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("%v: %s %s", err, resp.Status, b)
		}
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteMessage(websocket.BinaryMessage, append([]byte{0}, "GET /hostname HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"...))
	var data []byte
	seen := map[byte]int{}
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil || len(msg) == 0 {
			break
		}
		if seen[msg[0]]++; seen[msg[0]] == 1 {
			continue // the port number prefix
		}
		if msg[0] == 1 {
			t.Errorf("error channel: %s", msg[1:])
		}
		data = append(data, msg[1:]...)
		if strings.Contains(string(data), "\r\n\r\n") && strings.HasSuffix(string(data), pod) {
			break
		}
	}
	return string(data)
}

// TestStreamingIdleTimeout: a port-forward session that carries traffic
// stays up past the idle timeout; once idle that long, the kubelet closes it
// and client-go reports the lost connection.
func TestStreamingIdleTimeout(t *testing.T) {
	netexec := corev1.Container{Name: "c", Image: "agnhost", Args: []string{"netexec"}}
	tk := startTestKubeletIdle(t, time.Second, testPod("a", corev1.RestartPolicyAlways, netexec))
	tk.waitPod(t, "a", "Ready", isReady)
	local, fwdErr := tk.startForward(t, "a")
	for start := time.Now(); time.Since(start) < 2500*time.Millisecond; time.Sleep(300 * time.Millisecond) {
		if _, body := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/hostname", local)); body != "a" {
			t.Fatalf("hostname through port-forward = %q", body)
		}
		select {
		case err := <-fwdErr:
			t.Fatalf("busy session closed after %v: %v", time.Since(start), err)
		default:
		}
	}
	idleSince := time.Now()
	select {
	case err := <-fwdErr:
		if !errors.Is(err, portforward.ErrLostConnectionToPod) {
			t.Errorf("port-forward ended with %v", err)
		}
		if d := time.Since(idleSince); d < 500*time.Millisecond {
			t.Errorf("idle session closed after only %v", d)
		}
	case <-time.After(10 * time.Second):
		t.Error("idle port-forward session not closed")
	}
}

func TestKubeletFlags(t *testing.T) {
	base := []string{"--kubeconfig=k", "--cluster=c", "--cert=c", "--key=k", "--state-dir=d", "--nodes=1", "--ports=1234", "--pod-subnet=3"}
	c, err := parseKubeletFlags(base)
	if err != nil || c.streamIdle != 4*time.Hour {
		t.Errorf("default idle timeout %v (%v), want 4h", c.streamIdle, err)
	}
	if c, err := parseKubeletFlags(append(base, "--streaming-connection-idle-timeout=90s")); err != nil || c.streamIdle != 90*time.Second {
		t.Errorf("idle timeout %v (%v), want 90s", c.streamIdle, err)
	}
	if _, err := parseKubeletFlags(append(base, "--streaming-connection-idle-timeout=-1s")); err == nil {
		t.Error("negative idle timeout accepted")
	}
}

func shellIn(t *testing.T, tk *testKubelet, pod, cmd string) {
	t.Helper()
	httpGet(t, "http://"+tk.stateAddr(t, pod, "8080")+"/shell?cmd="+url.QueryEscape(cmd))
}

// readyFor asserts that pod's Ready condition stays want for d.
func (tk *testKubelet) readyFor(t *testing.T, name string, want bool, d time.Duration) {
	t.Helper()
	for start := time.Now(); time.Since(start) < d; time.Sleep(50 * time.Millisecond) {
		pod, err := tk.cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if isReady(pod) != want {
			t.Fatalf("pod %s Ready=%v after %v, want %v", name, !want, time.Since(start), want)
		}
	}
}

// TestReadinessProbes: exec, httpGet and tcpSocket probes drive the pod's
// Ready condition with the kubelet's timing (initialDelaySeconds,
// periodSeconds, thresholds, timeoutSeconds); the ready annotation overrides.
func TestReadinessProbes(t *testing.T) {
	probed := func(name string, probe corev1.Probe) *corev1.Pod {
		c := corev1.Container{Name: "c", Image: "agnhost", Args: []string{"netexec"},
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}, ReadinessProbe: &probe}
		return testPod(name, corev1.RestartPolicyAlways, c)
	}
	exec := func(cmd ...string) corev1.ProbeHandler {
		return corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: cmd}}
	}
	tk := startTestKubelet(t,
		probed("exec", corev1.Probe{ProbeHandler: exec("cat", "/tmp/ready"), PeriodSeconds: 1, FailureThreshold: 2}),
		probed("http", corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("http")}},
			InitialDelaySeconds: 2, PeriodSeconds: 1, SuccessThreshold: 2}),
		probed("tcp", corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}}, PeriodSeconds: 1}),
		probed("refused", corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(9999)}}, PeriodSeconds: 1}),
		probed("slow", corev1.Probe{ProbeHandler: exec("sh", "-c", "sleep 2"), PeriodSeconds: 1, TimeoutSeconds: 1}),
		probed("status", corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/echo?code=503", Port: intstr.FromInt32(8080)}}, PeriodSeconds: 1}),
	)
	start := time.Now()
	tk.waitPod(t, "tcp", "Ready", isReady)
	tk.waitPod(t, "http", "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	if d := time.Since(start); d < 1500*time.Millisecond {
		tk.readyFor(t, "http", false, 1500*time.Millisecond-d)
	}
	tk.waitPod(t, "http", "Ready", isReady)
	// initialDelaySeconds 2, then two successes one period apart.
	if d := time.Since(start); d < 3*time.Second {
		t.Errorf("http probe: Ready after %v, want >= 3s", d)
	}

	// exec: not ready until the file exists; unready after two failures.
	tk.readyFor(t, "exec", false, 500*time.Millisecond)
	shellIn(t, tk, "exec", "touch /tmp/ready")
	tk.waitPod(t, "exec", "Ready", isReady)
	shellIn(t, tk, "exec", "rm /tmp/ready")
	removed := time.Now()
	tk.waitPod(t, "exec", "not Ready", func(p *corev1.Pod) bool { return !isReady(p) })
	if d := time.Since(removed); d < 900*time.Millisecond {
		t.Errorf("unready %v after one failure, want two failures a period apart", d)
	}
	pod := tk.waitPod(t, "exec", "a message", func(p *corev1.Pod) bool { return !isReady(p) })
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Reason != "ContainersNotReady" {
			t.Errorf("Ready condition: %+v", c)
		}
	}
	// The annotation holds a pod that probes ready unready, and lets go.
	shellIn(t, tk, "exec", "touch /tmp/ready")
	tk.waitPod(t, "exec", "Ready again", isReady)
	tk.update(t, "exec", func(p *corev1.Pod) { p.Annotations = map[string]string{readyAnnotation: "false"} })
	tk.waitPod(t, "exec", "held", func(p *corev1.Pod) bool { return !isReady(p) })
	tk.update(t, "exec", func(p *corev1.Pod) { p.Annotations = nil })
	tk.waitPod(t, "exec", "released", isReady)

	// Refused connections, timeouts and 5xx never make a pod Ready.
	for _, name := range []string{"refused", "slow", "status"} {
		tk.readyFor(t, name, false, 100*time.Millisecond)
		if p := tk.waitPod(t, name, "Running", func(p *corev1.Pod) bool { return true }); p.Status.Phase != corev1.PodRunning {
			t.Errorf("pod %s: %s", name, p.Status.Phase)
		}
	}

	// A restarted container starts unready again.
	httpGet(t, "http://"+tk.stateAddr(t, "exec", "8080")+"/exit?code=1")
	tk.waitPod(t, "exec", "restarted, unready", func(p *corev1.Pod) bool {
		return p.Status.ContainerStatuses[0].RestartCount == 1 && !isReady(p)
	})
}

// TestTermination: deletion sends SIGTERM; netexec --delay-shutdown=1 turns
// /readyz to 503 (its probe makes the pod unready) and exits after 1 s, so
// the pod goes long before its 30 s grace period; pause exits 2.
func TestTermination(t *testing.T) {
	netexec := corev1.Container{Name: "c", Image: "agnhost", Args: []string{"netexec", "--delay-shutdown=1"},
		ReadinessProbe: &corev1.Probe{PeriodSeconds: 1, FailureThreshold: 1,
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromInt32(8080)}}}}
	pause := corev1.Container{Name: "p", Image: "agnhost", Args: []string{"pause"}}
	tk := startTestKubelet(t, testPod("n", corev1.RestartPolicyAlways, netexec), testPod("p", corev1.RestartPolicyAlways, pause))
	tk.waitPod(t, "n", "Ready", isReady)
	tk.waitPod(t, "p", "Ready", isReady)
	addr := tk.stateAddr(t, "n", "8080")
	tk.cs.ClearActions()
	deleted := time.Now()
	for _, name := range []string{"n", "p"} {
		tk.update(t, name, func(p *corev1.Pod) {
			p.DeletionTimestamp = ptr.To(metav1.Now())
			p.DeletionGracePeriodSeconds = ptr.To[int64](30)
		})
	}
	if code, body := httpGet(t, "http://"+addr+"/readyz"); code != 503 || body != "shutting down" {
		t.Errorf("/readyz while terminating: %d %q", code, body)
	}
	waitGone(t, tk, "p")
	waitGone(t, tk, "n")
	if d := time.Since(deleted); d < time.Second || d > 8*time.Second {
		t.Errorf("netexec pod gone %v after deletion, want about 1s", d)
	}
	var unready bool
	finals := map[string]*corev1.Pod{}
	for _, a := range tk.cs.Actions() {
		if u, ok := a.(k8stesting.UpdateActionImpl); ok && u.GetSubresource() == "status" {
			pod := u.GetObject().(*corev1.Pod)
			finals[pod.Name] = pod
			if pod.Name == "n" && !isReady(pod) && pod.Status.Phase == corev1.PodRunning {
				unready = true
			}
		}
	}
	if !unready {
		t.Error("the terminating netexec pod never went unready")
	}
	if p := finals["p"]; p == nil || p.Status.ContainerStatuses[0].State.Terminated == nil || p.Status.ContainerStatuses[0].State.Terminated.ExitCode != 2 {
		t.Errorf("pause final status: %+v", p)
	}
	if p := finals["n"]; p == nil || p.Status.Phase != corev1.PodSucceeded {
		t.Errorf("netexec final status: %+v", p)
	}
}

// TestContainerRoot: a container's root has /etc/hostname and /etc/hosts,
// loses what it wrote when it restarts, and shares emptyDir volumes with the
// pod's other containers; test-webserver serves it.
func TestContainerRoot(t *testing.T) {
	pod := testPod("r", corev1.RestartPolicyAlways, corev1.Container{Name: "web", Image: "agnhost",
		Args: []string{"test-webserver", "--port=8080"}, VolumeMounts: []corev1.VolumeMount{{Name: "shared", MountPath: "/srv/shared"}}})
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "sh", Image: "agnhost",
		Args: []string{"netexec", "--http-port=9090", "--udp-port=-1"}, VolumeMounts: []corev1.VolumeMount{{Name: "shared", MountPath: "/data"}}})
	pod.Spec.Volumes = []corev1.Volume{{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	tk := startTestKubelet(t, pod)
	tk.waitPod(t, "r", "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	web := "http://" + tk.stateAddr(t, "r", "8080")
	if _, body := httpGet(t, web+"/etc/hostname"); body != "r\n" {
		t.Errorf("/etc/hostname = %q", body)
	}
	if _, body := httpGet(t, web+"/etc/hosts"); !strings.Contains(body, "\tr\n") {
		t.Errorf("/etc/hosts = %q", body)
	}
	sh := "http://" + tk.stateAddr(t, "r", "9090")
	httpGet(t, sh+"/shell?cmd="+url.QueryEscape("echo shared > /data/f; echo private > /tmp/p"))
	if _, body := httpGet(t, web+"/srv/shared/f"); body != "shared\n" {
		t.Errorf("emptyDir file through the other container: %q", body)
	}
	if code, _ := httpGet(t, web+"/tmp/p"); code != 404 {
		t.Errorf("another container's /tmp visible: %d", code)
	}
	var st struct {
		Roots map[string]string `json:"roots"`
	}
	data, _ := os.ReadFile(filepath.Join(tk.podsDir, "default_r.json"))
	json.Unmarshal(data, &st)
	if b, err := os.ReadFile(filepath.Join(st.Roots["sh"], "tmp", "p")); err != nil || string(b) != "private\n" {
		t.Errorf("state file's root for sh: %q %v (%v)", b, err, st.Roots)
	}
	httpGet(t, sh+"/exit?code=1")
	tk.waitPod(t, "r", "restart", func(p *corev1.Pod) bool { return p.Status.ContainerStatuses[1].RestartCount == 1 })
	sh = "http://" + tk.stateAddr(t, "r", "9090")
	var out map[string]string
	_, body := httpGet(t, sh+"/shell?cmd="+url.QueryEscape("cat /data/f; test -e /tmp/p"))
	json.Unmarshal([]byte(body), &out)
	if out["output"] != "shared\n" || out["error"] != "exit status 1" {
		t.Errorf("after restart: %q", out)
	}
}
