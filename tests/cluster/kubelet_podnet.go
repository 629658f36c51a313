package main

// The emulated pod network for process containers (kubelet_process.go).
// Pod IPs (10.S.X.Y) and ClusterIPs exist only in the API; a Python process
// container imports podnet/sitecustomize.py, which asks this server, over a
// Unix socket with an abstract name, where its binds and connects really go:
//
//	HELLO TOKEN                       -> OK | ERR        (first line; TOKEN names the container run)
//	BIND tcp|udp PORT 4|6 HOST:REAL   -> OK | ERR EADDRINUSE
//	UNBIND tcp|udp PORT 4|6           -> OK
//	RESOLVE tcp|udp IP PORT           -> ADDR HOST:REAL | REFUSED
//	LOOKUP NAME                       -> IPS IP... | CNAME NAME | NONE
//
// A bind makes container port PORT of the pod be HOST:REAL, as a stand-in's
// listener is (port-forward, probes, and the state file see it). RESOLVE
// maps a pod IP of this cluster to the real address of that pod's port (a
// stand-in's listener or UDP socket, or a process's bind), and a Service
// ClusterIP to one ready endpoint's (what kube-proxy would do); a pod or
// port nobody serves is REFUSED for TCP and, for UDP, an address that drops
// every datagram (a real network drops them too). LOOKUP is cluster DNS
// for NAME.svc.cluster.local names: a Service's ClusterIP, a headless
// Service's ready endpoints, an ExternalName's name, or a pod's IP by
// HOSTNAME.SUBDOMAIN.NAMESPACE.

import (
	"bufio"
	_ "embed"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
)

//go:embed podnet/sitecustomize.py
var siteCustomize []byte

// serviceCIDR is the apiserver's --service-cluster-ip-range (orchestrator.go).
const serviceCIDR = "10.0.0.0/16"

// podNet is the kubelet's pod network server; its zero value starts on first use.
type podNet struct {
	once      sync.Once
	err       error
	name      string // abstract Unix socket name, without the leading NUL
	dir       string // holds sitecustomize.py
	blackhole string // a UDP address that reads and drops everything
	mu        sync.Mutex
	runs      map[string]*netRun // by token
}

// netRun is one run of a process container on the pod network.
type netRun struct {
	r     *podRecord
	p     *proc
	binds map[string]string // "tcp/8400/4" -> real address
}

func (n *podNet) start(k *kubelet) error {
	n.once.Do(func() {
		n.runs = map[string]*netRun{}
		n.dir = filepath.Join(k.podsDir, ".podnet")
		if n.err = os.MkdirAll(n.dir, 0o755); n.err != nil {
			return
		}
		if n.err = os.WriteFile(filepath.Join(n.dir, "sitecustomize.py"), siteCustomize, 0o644); n.err != nil {
			return
		}
		n.name = "tender-podnet-" + randHex(8)
		l, err := net.Listen("unix", "@"+n.name)
		if err != nil {
			n.err = err
			return
		}
		hole, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			l.Close()
			n.err = err
			return
		}
		n.blackhole = hole.LocalAddr().String()
		go func() {
			buf := make([]byte, 65536)
			for {
				if _, _, err := hole.ReadFrom(buf); err != nil {
					return
				}
			}
		}()
		go func() {
			<-k.ctx.Done()
			l.Close()
			hole.Close()
		}()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go n.serve(k, c)
			}
		}()
	})
	return n.err
}

// register lets the holder of token speak for p; the returned func revokes it.
func (n *podNet) register(token string, r *podRecord, p *proc) func() {
	n.mu.Lock()
	n.runs[token] = &netRun{r: r, p: p, binds: map[string]string{}}
	n.mu.Unlock()
	return func() {
		n.mu.Lock()
		delete(n.runs, token)
		n.mu.Unlock()
	}
}

// env is what a process needs to find this server and the cluster's networks.
func (n *podNet) env(k *kubelet, token, podIP, namespace string) map[string]string {
	return map[string]string{
		"TENDER_PODNET_NAMESPACE": namespace,
		"TENDER_PODNET_SOCKET":    n.name,
		"TENDER_PODNET_TOKEN":     token,
		"TENDER_PODNET_POD_IP":    podIP,
		"TENDER_PODNET_NETWORKS":  fmt.Sprintf("10.%d.0.0/16,%s", k.ips.subnet, serviceCIDR),
	}
}

func (n *podNet) serve(k *kubelet, c net.Conn) {
	defer c.Close()
	in := bufio.NewReader(c)
	var run *netRun
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		answer := "ERR"
		switch {
		case len(f) == 2 && f[0] == "HELLO":
			n.mu.Lock()
			run = n.runs[f[1]]
			n.mu.Unlock()
			if run != nil {
				answer = "OK"
			}
		case run == nil:
		case len(f) == 5 && f[0] == "BIND":
			answer = n.bind(run, f[1], f[2], f[3], f[4])
		case len(f) == 4 && f[0] == "UNBIND":
			answer = n.bind(run, f[1], f[2], f[3], "")
		case len(f) == 4 && f[0] == "RESOLVE":
			answer = n.resolve(k, f[1], f[2], f[3])
		case len(f) == 2 && f[0] == "LOOKUP":
			answer = k.lookupName(f[1])
		}
		if _, err := c.Write([]byte(answer + "\n")); err != nil {
			return
		}
	}
}

// bind records (addr != "") or withdraws (addr == "") container port
// port/proto of run's process; the IPv4 socket stands for the port when
// there is one.
func (n *podNet) bind(run *netRun, proto, portText, family, addr string) string {
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 || (proto != "tcp" && proto != "udp") {
		return "ERR"
	}
	p := run.p
	key := func(fam string) string { return proto + "/" + portText + "/" + fam }
	p.mu.Lock()
	if p.exited {
		p.mu.Unlock()
		return "ERR"
	}
	if addr != "" {
		if _, taken := run.binds[key(family)]; taken {
			p.mu.Unlock()
			return "ERR EADDRINUSE"
		}
		run.binds[key(family)] = addr
	} else {
		delete(run.binds, key(family))
	}
	m := p.addrs
	if proto == "udp" {
		m = p.udpAddrs
	}
	if a, ok := run.binds[key("4")]; ok {
		m[int32(port)] = a
	} else if a, ok := run.binds[key("6")]; ok {
		m[int32(port)] = a
	} else {
		delete(m, int32(port))
	}
	p.mu.Unlock()
	p.onPorts()
	return "OK"
}

// resolve answers where proto traffic to ip:port really goes.
func (n *podNet) resolve(k *kubelet, proto, ipText, portText string) string {
	port, err := strconv.Atoi(portText)
	ip, err2 := netip.ParseAddr(ipText)
	if err != nil || err2 != nil || port < 1 || port > 65535 {
		return "ERR"
	}
	addr := ""
	if netip.MustParsePrefix(serviceCIDR).Contains(ip) {
		addr = k.serviceAddr(proto, ip.String(), int32(port))
	} else {
		addr = k.podPortAddr(proto, ip.String(), int32(port))
	}
	switch {
	case addr != "":
		return "ADDR " + addr
	case proto == "udp":
		return "ADDR " + n.blackhole
	}
	return "REFUSED"
}

// podPortAddr is the real address serving proto port of the pod with IP
// ip, or "" when no running container of such a pod serves it.
func (k *kubelet) podPortAddr(proto, ip string, port int32) string {
	k.mu.Lock()
	var r *podRecord
	for _, p := range k.pods {
		if p.ip == ip {
			r = p
			break
		}
	}
	k.mu.Unlock()
	if r == nil {
		return ""
	}
	if proto == "tcp" {
		return r.portAddr(port)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return ""
	}
	for _, c := range r.all() {
		if c.running {
			if a := c.proc.udpAddr(port); a != "" {
				return a
			}
		}
	}
	return ""
}

// serviceAddr does kube-proxy's part for ClusterIP ip: the real address of
// a ready endpoint of the Service port port/proto, or "". An endpoint that
// is not a pod of this cluster (a hand-written EndpointSlice) is dialled as
// it is.
func (k *kubelet) serviceAddr(proto, ip string, port int32) string {
	services := k.cs.CoreV1().Services("")
	list, err := services.List(k.ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.clusterIP", ip).String()})
	if err != nil {
		// Older apiservers know no spec.clusterIP field selector.
		if list, err = services.List(k.ctx, metav1.ListOptions{}); err != nil {
			return ""
		}
	}
	want := corev1.Protocol(strings.ToUpper(proto))
	for _, svc := range list.Items {
		if svc.Spec.ClusterIP != ip {
			continue
		}
		for _, sp := range svc.Spec.Ports {
			if sp.Port != port || (sp.Protocol != want && !(sp.Protocol == "" && want == corev1.ProtocolTCP)) {
				continue
			}
			slices, err := k.cs.DiscoveryV1().EndpointSlices(svc.Namespace).List(k.ctx, metav1.ListOptions{
				LabelSelector: discoveryv1.LabelServiceName + "=" + svc.Name})
			if err != nil {
				return ""
			}
			for _, s := range slices.Items {
				target := int32(0)
				for _, ep := range s.Ports {
					epProto := corev1.ProtocolTCP
					if ep.Protocol != nil {
						epProto = *ep.Protocol
					}
					if ep.Port != nil && epProto == want && (ep.Name == nil && sp.Name == "" || ep.Name != nil && *ep.Name == sp.Name) {
						target = *ep.Port
					}
				}
				if target == 0 {
					continue
				}
				for _, e := range s.Endpoints {
					if e.Conditions.Ready != nil && !*e.Conditions.Ready {
						continue
					}
					for _, a := range e.Addresses {
						addr, err := netip.ParseAddr(a)
						if err != nil {
							continue
						}
						if netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/16", k.ips.subnet)).Contains(addr) {
							if real := k.podPortAddr(proto, a, target); real != "" {
								return real
							}
							continue
						}
						return net.JoinHostPort(a, itoa(int(target)))
					}
				}
			}
		}
	}
	return ""
}

// lookupName answers LOOKUP name (see the file comment).
func (k *kubelet) lookupName(name string) string {
	parts := strings.Split(strings.TrimSuffix(strings.ToLower(name), "."), ".")
	if len(parts) < 5 || strings.Join(parts[len(parts)-3:], ".") != "svc.cluster.local" {
		return "NONE"
	}
	parts = parts[:len(parts)-3]
	if len(parts) == 3 { // HOSTNAME.SUBDOMAIN.NAMESPACE: a pod of a headless Service
		k.mu.Lock()
		defer k.mu.Unlock()
		for _, r := range k.pods {
			if r.ns == parts[2] && r.ip != "" && r.latest.Spec.Hostname == parts[0] && r.latest.Spec.Subdomain == parts[1] {
				return "IPS " + r.ip
			}
		}
		return "NONE"
	}
	if len(parts) != 2 {
		return "NONE"
	}
	svc, err := k.cs.CoreV1().Services(parts[1]).Get(k.ctx, parts[0], metav1.GetOptions{})
	if err != nil {
		return "NONE"
	}
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		return "CNAME " + svc.Spec.ExternalName
	case svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone:
		return "IPS " + svc.Spec.ClusterIP
	}
	slices, err := k.cs.DiscoveryV1().EndpointSlices(svc.Namespace).List(k.ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + svc.Name})
	if err != nil {
		return "NONE"
	}
	var ips []string
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				ips = append(ips, e.Addresses...)
			}
		}
	}
	if len(ips) == 0 {
		return "NONE"
	}
	return "IPS " + strings.Join(ips, " ")
}
