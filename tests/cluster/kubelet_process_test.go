package main

// Process containers (kubelet_process.go) on the emulated pod network
// (kubelet_podnet.go): real python3 processes reach each other by pod IP
// and ClusterIP, port-forward and probes reach their binds, logs and exit
// codes are theirs, and activeDeadlineSeconds ends a pod.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

const echoServerPy = `
import asyncio, signal, socket
async def main():
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, lambda: (print("got SIGTERM", flush=True), loop.stop()))
    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, t): self.t = t
        def datagram_received(self, d, a): self.t.sendto(d, a)
    await loop.create_datagram_endpoint(Echo, local_addr=("0.0.0.0", 5353))
    async def echo(r, w):
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
        w.close()
    srv = await asyncio.start_server(echo, "0.0.0.0", 9000, family=socket.AF_INET)
    print("serving on", srv.sockets[0].getsockname(), flush=True)
    await asyncio.Event().wait()
try:
    asyncio.run(main())
except RuntimeError:
    pass
`

const echoClientPy = `
import asyncio, sys
async def udp(ip, port, payload):
    loop = asyncio.get_running_loop()
    got = loop.create_future()
    class C(asyncio.DatagramProtocol):
        def datagram_received(self, d, a): got.set_result(d)
    t, _ = await loop.create_datagram_endpoint(C, remote_addr=(ip, port))
    t.sendto(payload)
    try:
        return (await asyncio.wait_for(got, 2)).decode()
    except asyncio.TimeoutError:
        return "no answer"
    finally:
        t.close()
async def main(ip, svc):
    r, w = await asyncio.open_connection(ip, 9000)
    w.write(b"hello tcp")
    await w.drain()
    print("tcp:", (await r.read(100)).decode(), flush=True)
    w.close()
    print("udp:", await udp(ip, 5353, b"hello udp"), flush=True)
    print("svc udp:", await udp(svc, 53, b"hello svc"), flush=True)
    print("udp closed port:", await udp(ip, 5454, b"x"), flush=True)
    for where in ((ip, 9999), ("10.7.250.250", 9000)):
        try:
            await asyncio.open_connection(*where)
            print("connected?!")
        except ConnectionRefusedError as e:
            print("refused", e.errno, flush=True)
    sys.exit(3)
asyncio.run(main(sys.argv[1], sys.argv[2]))
`

func needPython(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("no python3 on this host")
	}
}

func pyContainer(name, program string, args ...string) corev1.Container {
	return corev1.Container{Name: name, Image: "python:3.13-alpine",
		Command: append([]string{"python3", "-c", program}, args...)}
}

// podLog is what the pod's only container printed so far.
func (tk *testKubelet) podLog(t *testing.T, pod string) string {
	t.Helper()
	r := tk.k.lookup("t-node-1", "default", pod)
	if r == nil {
		t.Fatalf("pod %s is not running here", pod)
	}
	lines, _, _, _ := r.ctrs[0].logs.since(0, 0)
	var out []string
	for _, l := range lines {
		out = append(out, l.text)
	}
	return strings.Join(out, "\n")
}

func terminated(p *corev1.Pod) *corev1.ContainerStateTerminated {
	if len(p.Status.ContainerStatuses) == 0 {
		return nil
	}
	return p.Status.ContainerStatuses[0].State.Terminated
}

func TestProcessContainersPodNetwork(t *testing.T) {
	needPython(t)
	tk := startTestKubelet(t, testPod("server", corev1.RestartPolicyAlways, pyContainer("echo", echoServerPy)))
	server := tk.waitPod(t, "server", "Running with port 9000", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && tk.k.podPortAddr("udp", p.Status.PodIP, 5353) != "" &&
			tk.k.podPortAddr("tcp", p.Status.PodIP, 9000) != ""
	})
	ip := server.Status.PodIP
	if !strings.HasPrefix(ip, "10.7.") {
		t.Fatalf("pod IP %q", ip)
	}
	if addr := tk.stateAddr(t, "server", "9000"); !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("state file port 9000: %q", addr)
	}
	if log := tk.podLog(t, "server"); log != "serving on ('0.0.0.0', 9000)" {
		t.Errorf("server log (getsockname shows the pod's view): %q", log)
	}

	// A Service whose EndpointSlice names the server pod's UDP port.
	ctx := context.Background()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "dns", Namespace: "default"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.53", Ports: []corev1.ServicePort{
			{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(5353)}}}}
	if _, err := tk.cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "dns-1", Namespace: "default",
			Labels: map[string]string{discoveryv1.LabelServiceName: "dns"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("dns"), Port: ptr.To[int32](5353),
			Protocol: ptr.To(corev1.ProtocolUDP)}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
	}
	if _, err := tk.cs.DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	if _, err := tk.cs.CoreV1().Pods("default").Create(ctx,
		testPod("client", corev1.RestartPolicyNever, pyContainer("c", echoClientPy, ip, "10.0.0.53")),
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	client := tk.waitPod(t, "client", "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if term := terminated(client); term == nil || term.ExitCode != 3 || term.Reason != "Error" {
		t.Errorf("client's container state: %+v", client.Status.ContainerStatuses)
	}
	want := "tcp: hello tcp\nudp: hello udp\nsvc udp: hello svc\nudp closed port: no answer\nrefused 111\nrefused 111"
	if log := tk.podLog(t, "client"); log != want {
		t.Errorf("client log:\n%s\nwant:\n%s", log, want)
	}

	// Deletion sends SIGTERM; the program's handler runs and it exits.
	tk.update(t, "server", func(p *corev1.Pod) {
		p.DeletionTimestamp = ptr.To(metav1.Now())
		p.DeletionGracePeriodSeconds = ptr.To[int64](30)
	})
	r := tk.k.lookup("t-node-1", "default", "server")
	deleted := time.Now()
	waitGone(t, tk, "server")
	if d := time.Since(deleted); d > 5*time.Second {
		t.Errorf("server pod gone %v after deletion: SIGTERM did not reach it", d)
	}
	lines, _, _, _ := r.ctrs[0].logs.since(0, 0)
	if last := lines[len(lines)-1].text; last != "got SIGTERM" {
		t.Errorf("server's last log line %q", last)
	}
}

func TestProcessContainerPortForwardAndProbe(t *testing.T) {
	needPython(t)
	prog := `
import asyncio, os
async def hello(r, w):
    w.write(("hello from " + os.environ["HOSTNAME"] + " in " + os.getcwd().rsplit("/", 1)[-1] + "\n").encode())
    await w.drain()
    w.close()
async def main():
    srv = await asyncio.start_server(hello, "127.0.0.1", 8080)
    print("listening", flush=True)
    await srv.serve_forever()
asyncio.run(main())
`
	c := pyContainer("web", prog)
	c.ReadinessProbe = &corev1.Probe{PeriodSeconds: 1,
		ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}}}
	tk := startTestKubelet(t, testPod("web", corev1.RestartPolicyAlways, c))
	tk.waitPod(t, "web", "Ready (tcpSocket probe on 8080)", isReady)
	port, _ := tk.startForward(t, "web")
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || line != "hello from web in web\n" {
		t.Errorf("through port-forward: %q, %v", line, err)
	}
}

func TestProcessContainerRestartAndExitCodes(t *testing.T) {
	needPython(t)
	prog := `import sys; print("run"); print("no newline", end=""); sys.exit(int(sys.argv[1]))`
	tk := startTestKubelet(t, testPod("fail", corev1.RestartPolicyOnFailure, pyContainer("c", prog, "4")),
		testPod("ok", corev1.RestartPolicyOnFailure, pyContainer("c", prog, "0")))
	p := tk.waitPod(t, "fail", "a restart", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].RestartCount >= 1 &&
			p.Status.ContainerStatuses[0].LastTerminationState.Terminated != nil
	})
	if last := p.Status.ContainerStatuses[0].LastTerminationState.Terminated; last.ExitCode != 4 {
		t.Errorf("last termination: %+v", last)
	}
	ok := tk.waitPod(t, "ok", "Succeeded", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	if term := terminated(ok); term == nil || term.ExitCode != 0 || term.Reason != "Completed" {
		t.Errorf("ok's state: %+v", ok.Status.ContainerStatuses)
	}
	if log := tk.podLog(t, "ok"); log != "run\nno newline" {
		t.Errorf("log %q", log)
	}
}

func TestActiveDeadlineSeconds(t *testing.T) {
	needPython(t)
	pod := testPod("slow", corev1.RestartPolicyAlways, pyContainer("c", "import time; time.sleep(60)"))
	pod.Spec.ActiveDeadlineSeconds = ptr.To[int64](1)
	stand := testPod("stand", corev1.RestartPolicyAlways, corev1.Container{Name: "p", Image: "agnhost", Args: []string{"pause"}})
	stand.Spec.ActiveDeadlineSeconds = ptr.To[int64](1)
	tk := startTestKubelet(t, pod, stand)
	start := time.Now()
	for _, name := range []string{"slow", "stand"} {
		p := tk.waitPod(t, name, "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
		if p.Status.Reason != "DeadlineExceeded" || p.Status.Message != deadlineMessage {
			t.Errorf("%s: reason %q message %q", name, p.Status.Reason, p.Status.Message)
		}
		if term := terminated(p); term == nil || term.ExitCode != 137 {
			t.Errorf("%s: container state %+v", name, p.Status.ContainerStatuses)
		}
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("the deadline took %v", d)
	}
}

// TestProcessContainerAddresses: what the program sees of the emulated
// network (getpeername, recvfrom's source are the pod's IP and port),
// thousands of unconnected sendto calls, and a listener only the host has,
// reached by name as a relay reaches one.
func TestProcessContainerAddresses(t *testing.T) {
	needPython(t)
	host, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	go func() {
		for {
			c, err := host.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("only the node has me"))
			c.Close()
		}
	}()
	prog := `
import socket, sys, time
ip, hostport = sys.argv[1], int(sys.argv[2])
c = socket.create_connection((ip, 9000), timeout=5)
print("peer", c.getpeername())
c.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(5)
started = time.monotonic()
for i in range(2000):
    u.sendto(b"%d" % i, (ip, 5353))
    d, a = u.recvfrom(100)
    assert d == b"%d" % i, d
print("udp from", a, "in under 5 s:", time.monotonic() - started < 5)
h = socket.create_connection(("localhost", hostport), timeout=5)
print("host:", h.recv(100).decode())
`
	tk := startTestKubelet(t, testPod("server", corev1.RestartPolicyAlways, pyContainer("echo", echoServerPy)))
	server := tk.waitPod(t, "server", "serving", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && tk.k.podPortAddr("udp", p.Status.PodIP, 5353) != "" &&
			tk.k.podPortAddr("tcp", p.Status.PodIP, 9000) != ""
	})
	ip := server.Status.PodIP
	port := itoa(host.Addr().(*net.TCPAddr).Port)
	if _, err := tk.cs.CoreV1().Pods("default").Create(context.Background(),
		testPod("client", corev1.RestartPolicyNever, pyContainer("c", prog, ip, port)), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	client := tk.waitPod(t, "client", "done", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	})
	want := fmt.Sprintf("peer ('%s', 9000)\nudp from ('%s', 5353) in under 5 s: True\nhost: only the node has me", ip, ip)
	if log := tk.podLog(t, "client"); client.Status.Phase != corev1.PodSucceeded || log != want {
		t.Errorf("client %s, log:\n%s\nwant:\n%s", client.Status.Phase, log, want)
	}
}

// TestProcessContainerClusterDNS: cluster names resolve as cluster DNS would
// answer them, through the resolv.conf search list, and traffic to them
// reaches the pods; other names go to the host's resolver.
func TestProcessContainerClusterDNS(t *testing.T) {
	needPython(t)
	tk := startTestKubelet(t, testPod("server", corev1.RestartPolicyAlways, pyContainer("echo", echoServerPy)))
	server := tk.waitPod(t, "server", "serving", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && tk.k.podPortAddr("udp", p.Status.PodIP, 5353) != ""
	})
	ip := server.Status.PodIP
	ctx := context.Background()
	for _, svc := range []*corev1.Service{
		{ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: "default"},
			Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.53", Ports: []corev1.ServicePort{
				{Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(5353)}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "alias", Namespace: "other"},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "echo.default.svc.cluster.local"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "headless", Namespace: "default"},
			Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone}},
	} {
		if _, err := tk.cs.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []struct{ svc, port string }{{"echo", ""}, {"headless", ""}} {
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: s.svc + "-1", Namespace: "default",
				Labels: map[string]string{discoveryv1.LabelServiceName: s.svc}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports: []discoveryv1.EndpointPort{{Name: ptr.To(s.port), Port: ptr.To[int32](5353),
				Protocol: ptr.To(corev1.ProtocolUDP)}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{ip}}},
		}
		if _, err := tk.cs.DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	prog := `
import asyncio, socket
def addr(name, port):
    try:
        return socket.getaddrinfo(name, port, socket.AF_INET, socket.SOCK_DGRAM)[0][4]
    except socket.gaierror as e:
        return "gaierror"
for name in ("echo", "echo.default", "echo.default.svc", "echo.default.svc.cluster.local.",
             "headless", "alias.other", "nosuch.default.svc.cluster.local", "localhost"):
    print(name, addr(name, 53))
async def main():
    loop = asyncio.get_running_loop()
    got = loop.create_future()
    class C(asyncio.DatagramProtocol):
        def datagram_received(self, d, a): got.set_result(d)
    t, _ = await loop.create_datagram_endpoint(C, remote_addr=("alias.other.svc.cluster.local", 53))
    t.sendto(b"through an ExternalName")
    print((await asyncio.wait_for(got, 5)).decode())
asyncio.run(main())
`
	if _, err := tk.cs.CoreV1().Pods("default").Create(ctx,
		testPod("client", corev1.RestartPolicyNever, pyContainer("c", prog)), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	client := tk.waitPod(t, "client", "done", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	})
	svc := "('10.0.0.53', 53)"
	want := strings.Join([]string{"echo " + svc, "echo.default " + svc, "echo.default.svc " + svc,
		"echo.default.svc.cluster.local. " + svc, fmt.Sprintf("headless ('%s', 53)", ip), "alias.other " + svc,
		"nosuch.default.svc.cluster.local gaierror", "localhost ('127.0.0.1', 53)", "through an ExternalName"}, "\n")
	if log := tk.podLog(t, "client"); client.Status.Phase != corev1.PodSucceeded || log != want {
		t.Errorf("client %s, log:\n%s\nwant:\n%s", client.Status.Phase, log, want)
	}
}
