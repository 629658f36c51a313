package main

// The test kubelet: `testcluster component kubelet --kubeconfig ... --cluster
// NAME --nodes N --ports P1,...,PN --cert F --key F --state-dir D
// --pod-subnet S`. One process plays N nodes: it registers them, keeps their
// Lease and status fresh, runs the pods bound to them with in-process
// stand-ins (agnhost*.go) and serves each node's kubelet API (port-forward,
// container logs) on 127.0.0.1:Pi. Files: kubelet_node.go (Node, Lease),
// kubelet_pods.go (informers, pod index), kubelet_podworker.go (one pod's
// life), kubelet_status.go (pod status), kubelet_server.go (HTTPS API),
// kubelet_ipam.go (pod IPs); the stand-ins are in agnhost*.go.
//
// Process containers (kubelet_process.go): a container whose command[0] is
// python3 or python, whatever its image, runs as a real process of the
// host's python3 with argv command[1:] + args, the container's resolved env
// (PATH defaulted), cwd its root directory, its stdout/stderr lines as its
// log and its exit status (128+signal when killed) as its terminated state;
// SIGTERM on deletion, SIGKILL to its process group when the grace period
// ends, when the kubelet stops, and (PR_SET_PDEATHSIG) when the kubelet
// dies. It runs on an emulated pod network (kubelet_podnet.go,
// podnet/sitecustomize.py, embedded and put first on its PYTHONPATH): a
// bind to port P>0 on any/loopback/the pod IP really binds 127.0.0.1:0 and
// makes container port P/tcp|udp that address for port-forward, probes and
// other pods; a connect/sendto to a pod IP of this cluster or a ClusterIP
// reaches the real address serving it (stand-in or process), refused for
// TCP and dropped for UDP when nobody serves it; other addresses are
// untouched; getaddrinfo answers cluster DNS names (NAME.NS.svc.cluster.local
// and the search-list forms) with ClusterIPs, headless endpoints and
// ExternalName targets, and sends other names to the host's resolver. Not covered: the image's Python version (the host's runs),
// python -I/-E/-S (no sitecustomize), a forked child closing a listening
// socket it inherited (the port is withdrawn), SO_REUSEPORT, IPv6 pod IPs;
// a kubelet restart runs the program again. spec.activeDeadlineSeconds kills
// every container once the pod has run that long: Failed, DeadlineExceeded.

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// kubeletLog is the logger for the kubelet's own lines (stderr goes to a log file).
var kubeletLog = log.New(os.Stderr, "kubelet ", log.LstdFlags|log.Lmicroseconds)

type kubeletConfig struct {
	kubeconfig, cluster, certFile, keyFile, stateDir string
	nodes, subnet                                    int
	ports                                            []int
	// streamIdle is the kubelet's streamingConnectionIdleTimeout: a
	// port-forward session with no traffic for this long is closed; 0
	// means never, as in the kubelet.
	streamIdle time.Duration
}

// defaultStreamIdle is the kubelet's default streamingConnectionIdleTimeout.
const defaultStreamIdle = 4 * time.Hour

func parseKubeletFlags(args []string) (*kubeletConfig, error) {
	c := &kubeletConfig{}
	fs := flag.NewFlagSet("kubelet", flag.ContinueOnError)
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "admin kubeconfig")
	fs.StringVar(&c.cluster, "cluster", "", "cluster name; nodes are NAME-node-1..N")
	fs.IntVar(&c.nodes, "nodes", 2, "number of nodes")
	ports := fs.String("ports", "", "comma-separated HTTPS port per node")
	fs.StringVar(&c.certFile, "cert", "", "TLS serving certificate (PEM)")
	fs.StringVar(&c.keyFile, "key", "", "TLS serving key (PEM)")
	fs.StringVar(&c.stateDir, "state-dir", "", "writable directory")
	fs.IntVar(&c.subnet, "pod-subnet", 0, "pod IPs are 10.N.x.y, N in 1..250")
	fs.DurationVar(&c.streamIdle, "streaming-connection-idle-timeout", defaultStreamIdle,
		"close a port-forward session idle this long, 0 = never (the kubelet's streamingConnectionIdleTimeout)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	for _, p := range strings.Split(*ports, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("bad port %q in --ports", p)
		}
		c.ports = append(c.ports, n)
	}
	switch {
	case c.kubeconfig == "" || c.cluster == "" || c.certFile == "" || c.keyFile == "" || c.stateDir == "":
		return nil, fmt.Errorf("--kubeconfig, --cluster, --cert, --key and --state-dir are required")
	case c.nodes < 1 || len(c.ports) != c.nodes:
		return nil, fmt.Errorf("--ports must list one port for each of the %d nodes", c.nodes)
	case c.subnet < 1 || c.subnet > 250:
		return nil, fmt.Errorf("--pod-subnet must be 1..250")
	case c.streamIdle < 0:
		return nil, fmt.Errorf("--streaming-connection-idle-timeout must not be negative")
	}
	return c, nil
}

func runKubelet(args []string) int {
	cfg, err := parseKubeletFlags(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubelet:", err)
		return 2
	}
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.kubeconfig)
	if err != nil {
		kubeletLog.Print("kubeconfig: ", err)
		return 1
	}
	rc.QPS, rc.Burst = 50, 100
	rc.UserAgent = "tender-test-kubelet"
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		kubeletLog.Print("client: ", err)
		return 1
	}
	cert, err := tls.LoadX509KeyPair(cfg.certFile, cfg.keyFile)
	if err != nil {
		kubeletLog.Print("serving cert: ", err)
		return 1
	}
	podsDir := filepath.Join(cfg.stateDir, "pods")
	// Files left by a previous run describe stand-ins that no longer exist.
	os.RemoveAll(podsDir)
	if err := os.MkdirAll(podsDir, 0o755); err != nil {
		kubeletLog.Print(err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	k := newKubelet(ctx, cs, cfg, podsDir)
	var servers []func()
	for _, n := range k.nodes {
		shutdown, err := k.serveNode(n, cert)
		if err != nil {
			kubeletLog.Printf("node %s: %v", n.name, err)
			return 1
		}
		servers = append(servers, shutdown)
		go k.runNode(ctx, n)
		k.watchPods(ctx, n)
	}
	kubeletLog.Printf("serving %d nodes of cluster %s on ports %v", len(k.nodes), cfg.cluster, cfg.ports)
	<-ctx.Done()

	kubeletLog.Print("stopping: shutting down containers (nodes are kept)")
	for _, s := range servers {
		s()
	}
	k.waitPods(5 * time.Second)
	return 0
}
