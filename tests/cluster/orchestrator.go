package main

// The orchestrator: `up`, `down`, `stop`, `start`, `status`. It lays out a
// directory per cluster, starts each component as its own process (this
// binary again, `component NAME`), and waits until the cluster is usable.
//
// DIR/kubeconfig            contexts tender-a, tender-a-viewer, tender-b, ...
// DIR/logs/<cluster>-<component>.log
// DIR/<letter>/state.json   ports, tokens and the command line of each component
// DIR/<letter>/pids/<component>.pid

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Components in start order; `down` stops them in reverse.
var componentOrder = []string{"etcd", "apiserver", "controller-manager", "scheduler", "kubelet"}

type clusterState struct {
	Letter      string              `json:"letter"`
	Name        string              `json:"name"`
	Dir         string              `json:"dir"`
	APIPort     int                 `json:"api_port"`
	EtcdPort    int                 `json:"etcd_port"`
	EtcdPeer    int                 `json:"etcd_peer_port"`
	KubeletPort []int               `json:"kubelet_ports"`
	AdminToken  string              `json:"admin_token"`
	ViewerToken string              `json:"viewer_token"`
	CAFile      string              `json:"ca_file"`
	Commands    map[string][]string `json:"commands"`
}

func runOrchestrator(cmd string, args []string) int {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	dir := fs.String("dir", "", "state directory")
	clusters := fs.Int("clusters", 1, "number of clusters")
	nodes := fs.Int("nodes", 2, "nodes per cluster")
	cluster := fs.String("cluster", "", "cluster letter or name (stop/start)")
	component := fs.String("component", "", "component (stop/start)")
	streamIdle := fs.Duration("streaming-connection-idle-timeout", defaultStreamIdle,
		"up: the kubelets close a port-forward session idle this long; 0 = never")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "testcluster: --dir is required")
		return 2
	}
	abs, err := filepath.Abs(*dir)
	must(err)
	switch cmd {
	case "up":
		if *clusters < 1 || *clusters > 26 || *nodes < 1 {
			fmt.Fprintln(os.Stderr, "testcluster: --clusters must be 1..26 and --nodes >= 1")
			return 2
		}
		if *streamIdle < 0 {
			fmt.Fprintln(os.Stderr, "testcluster: --streaming-connection-idle-timeout must not be negative")
			return 2
		}
		return up(abs, *clusters, *nodes, *streamIdle)
	case "down":
		return down(abs)
	case "stop", "start":
		st, err := loadState(abs, *cluster)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testcluster:", err)
			return 2
		}
		if _, ok := st.Commands[*component]; !ok {
			fmt.Fprintf(os.Stderr, "testcluster: unknown component %q\n", *component)
			return 2
		}
		if cmd == "stop" {
			stopComponent(st, *component)
			return 0
		}
		if err := startComponent(st, *component); err != nil {
			fmt.Fprintln(os.Stderr, "testcluster:", err)
			return 1
		}
		if *component == "apiserver" {
			if err := waitAPIReady(st, 60*time.Second); err != nil {
				fmt.Fprintln(os.Stderr, "testcluster:", err)
				return 1
			}
		}
		return 0
	case "status":
		for _, st := range allStates(abs) {
			for _, c := range componentOrder {
				pid, alive := componentPID(st, c)
				fmt.Printf("%s %s pid=%d alive=%v\n", st.Name, c, pid, alive)
			}
		}
		return 0
	}
	usage()
	return 2
}

// freePort is a port free now for a component to listen on later. It is taken
// below the kernel's ephemeral range (net.ipv4.ip_local_port_range): a port
// from that range (what listening on :0 gives) may be handed to any outgoing
// connection before the component binds it, and then etcd failed with
// "address already in use" under load (a clean-clone suite run beside another).
func freePort() int {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	if low > 12000 {
		for range 200 {
			port := 10000 + rand.IntN(low-10000)
			if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
				l.Close()
				return port
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func up(dir string, nClusters, nNodes int, streamIdle time.Duration) int {
	start := time.Now()
	if len(allStates(dir)) > 0 {
		fmt.Fprintln(os.Stderr, "testcluster: clusters already exist in", dir, "- run down first")
		return 2
	}
	must(os.MkdirAll(filepath.Join(dir, "logs"), 0o755))
	var states []*clusterState
	for i := 0; i < nClusters; i++ {
		states = append(states, prepareCluster(dir, i, nNodes, streamIdle))
	}
	writeKubeconfig(dir, states)
	var wg sync.WaitGroup
	errs := make([]error, len(states))
	for i, st := range states {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = bootCluster(st, nNodes)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			fmt.Fprintf(os.Stderr, "testcluster: %s: %v (logs in %s)\n", states[i].Name, err, filepath.Join(dir, "logs"))
			down(dir) // leave no process behind
			return 1
		}
	}
	fmt.Printf("testcluster: %d cluster(s) up in %.1fs; KUBECONFIG=%s\n", nClusters, time.Since(start).Seconds(), filepath.Join(dir, "kubeconfig"))
	return 0
}

func prepareCluster(dir string, index, nNodes int, streamIdle time.Duration) *clusterState {
	letter := string(rune('a' + index))
	cdir := filepath.Join(dir, letter)
	pki := filepath.Join(cdir, "pki")
	must(os.MkdirAll(pki, 0o755))
	must(os.MkdirAll(filepath.Join(cdir, "pids"), 0o755))
	st := &clusterState{
		Letter: letter, Name: "tender-" + letter, Dir: cdir,
		APIPort: freePort(), EtcdPort: freePort(), EtcdPeer: freePort(),
		AdminToken: randomToken(), ViewerToken: randomToken(),
		CAFile: filepath.Join(pki, "ca.crt"),
	}
	for i := 0; i < nNodes; i++ {
		st.KubeletPort = append(st.KubeletPort, freePort())
	}
	ca := newCA(st.Name + "-ca")
	ca.write(pki, "ca")
	ca.issue("kube-apiserver", nil, []string{"127.0.0.1", "::1", "localhost", "10.0.0.1",
		"kubernetes", "kubernetes.default", "kubernetes.default.svc"}).write(pki, "apiserver")
	ca.issue("kube-apiserver-kubelet-client", []string{"system:masters"}, nil).write(pki, "apiserver-kubelet-client")
	ca.issue("kubelet", nil, []string{"127.0.0.1", "localhost"}).write(pki, "kubelet")
	// A client certificate for the admin, so tests cover certificate auth too.
	ca.issue("cert-admin", []string{"system:masters"}, nil).write(pki, "admin-client")
	sa := newKey()
	must(os.WriteFile(filepath.Join(pki, "sa.key"), keyPEM(sa), 0o600))
	must(os.WriteFile(filepath.Join(pki, "sa.pub"), pubPEM(sa), 0o644))
	// Static tokens: the admin (cluster-admin through system:masters) used by
	// the components and the tests, and a viewer that may read but not forward.
	tokens := fmt.Sprintf("%s,admin,admin-uid,\"system:masters\"\n%s,viewer,viewer-uid,\"tender:viewers\"\n",
		st.AdminToken, st.ViewerToken)
	must(os.WriteFile(filepath.Join(pki, "tokens.csv"), []byte(tokens), 0o600))
	adminKC := filepath.Join(cdir, "admin.kubeconfig")
	writeComponentKubeconfig(adminKC, st)

	p := func(name string) string { return filepath.Join(pki, name) }
	var kubeletPorts []string
	for _, port := range st.KubeletPort {
		kubeletPorts = append(kubeletPorts, strconv.Itoa(port))
	}
	st.Commands = map[string][]string{
		"etcd": {"etcd", filepath.Join(cdir, "etcd-data"),
			fmt.Sprintf("http://127.0.0.1:%d", st.EtcdPort), fmt.Sprintf("http://127.0.0.1:%d", st.EtcdPeer)},
		"apiserver": {"apiserver",
			fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", st.EtcdPort),
			"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
			fmt.Sprintf("--secure-port=%d", st.APIPort),
			"--tls-cert-file=" + p("apiserver.crt"), "--tls-private-key-file=" + p("apiserver.key"),
			"--client-ca-file=" + p("ca.crt"),
			"--token-auth-file=" + p("tokens.csv"),
			"--authorization-mode=RBAC",
			"--service-account-key-file=" + p("sa.pub"),
			"--service-account-signing-key-file=" + p("sa.key"),
			"--service-account-issuer=https://kubernetes.default.svc",
			"--service-cluster-ip-range=10.0.0.0/16",
			"--kubelet-preferred-address-types=InternalIP",
			"--kubelet-client-certificate=" + p("apiserver-kubelet-client.crt"),
			"--kubelet-client-key=" + p("apiserver-kubelet-client.key"),
			// The kubernetes Service's endpoint would be 127.0.0.1, which
			// Endpoints validation rejects; nothing in the tests needs it.
			"--endpoint-reconciler-type=none",
			"--allow-privileged=true",
			// Without a watch grace period the HTTP server's shutdown waits
			// (up to --request-timeout, 60 s) for the components' open
			// watches, so `stop` hit its 10 s SIGKILL fallback every time;
			// with it, SIGTERM ends the apiserver in about a second.
			"--shutdown-watch-termination-grace-period=2s",
			"--profiling=false",
			"--v=1",
		},
		"controller-manager": {"controller-manager",
			"--kubeconfig=" + adminKC,
			"--leader-elect=false",
			"--secure-port=0",
			"--service-account-private-key-file=" + p("sa.key"),
			"--root-ca-file=" + p("ca.crt"),
			"--cluster-signing-cert-file=" + p("ca.crt"),
			"--cluster-signing-key-file=" + p("ca.key"),
			"--v=1",
		},
		"scheduler": {"scheduler",
			"--kubeconfig=" + adminKC,
			"--leader-elect=false",
			"--secure-port=0",
			"--v=1",
		},
		"kubelet": {"kubelet",
			"--kubeconfig=" + adminKC,
			"--cluster=" + st.Name,
			fmt.Sprintf("--nodes=%d", nNodes),
			"--ports=" + strings.Join(kubeletPorts, ","),
			"--cert=" + p("kubelet.crt"), "--key=" + p("kubelet.key"),
			"--state-dir=" + filepath.Join(cdir, "kubelet"),
			fmt.Sprintf("--pod-subnet=%d", 10+index),
			"--streaming-connection-idle-timeout=" + streamIdle.String(),
		},
	}
	data, err := json.MarshalIndent(st, "", "  ")
	must(err)
	must(os.WriteFile(filepath.Join(cdir, "state.json"), data, 0o600))
	return st
}

func bootCluster(st *clusterState, nNodes int) error {
	for _, c := range []string{"etcd", "apiserver"} {
		if err := startComponent(st, c); err != nil {
			return err
		}
	}
	if err := waitAPIReady(st, 90*time.Second); err != nil {
		return err
	}
	for _, c := range []string{"controller-manager", "scheduler", "kubelet"} {
		if err := startComponent(st, c); err != nil {
			return err
		}
	}
	cs := adminClient(st)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if err := createViewerRBAC(ctx, cs); err != nil {
		return fmt.Errorf("viewer RBAC: %w", err)
	}
	return poll(ctx, "nodes Ready and the default ServiceAccount", func() bool {
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		ready := 0
		for _, n := range nodes.Items {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		if ready < nNodes {
			return false
		}
		_, err = cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
}

func poll(ctx context.Context, what string, ok func() bool) error {
	for {
		if ok() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out waiting for %s", what)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func createViewerRBAC(ctx context.Context, cs *kubernetes.Clientset) error {
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "tender-viewer"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"get", "list", "watch"}}},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "tender-viewer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "tender-viewer"},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "viewer"}},
	}
	return poll(ctx, "RBAC objects", func() bool {
		_, err1 := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{})
		_, err2 := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{})
		return (err1 == nil || apierrors.IsAlreadyExists(err1)) && (err2 == nil || apierrors.IsAlreadyExists(err2))
	})
}

func adminConfig(st *clusterState) *rest.Config {
	return &rest.Config{
		Host:            fmt.Sprintf("https://127.0.0.1:%d", st.APIPort),
		BearerToken:     st.AdminToken,
		TLSClientConfig: rest.TLSClientConfig{CAFile: st.CAFile},
		QPS:             50, Burst: 100,
	}
}

func adminClient(st *clusterState) *kubernetes.Clientset {
	cs, err := kubernetes.NewForConfig(adminConfig(st))
	must(err)
	return cs
}

func waitAPIReady(st *clusterState, timeout time.Duration) error {
	cfg := adminConfig(st)
	transport, err := rest.TransportFor(cfg)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: transport, Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return poll(ctx, "the apiserver's /readyz", func() bool {
		resp, err := client.Get(cfg.Host + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

func pidFile(st *clusterState, component string) string {
	return filepath.Join(st.Dir, "pids", component+".pid")
}

// componentPID reads the pid file and checks that the process is still one of
// ours (a recycled pid must never be signalled).
func componentPID(st *clusterState, component string) (int, bool) {
	data, err := os.ReadFile(pidFile(st, component))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return pid, false
	}
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// A zombie (state Z) is as good as gone.
		if f := strings.Fields(string(stat)); len(f) > 2 && f[2] == "Z" {
			return pid, false
		}
	}
	return pid, strings.Contains(string(cmdline), "component\x00"+component+"\x00") &&
		strings.Contains(string(cmdline), st.Dir)
}

func startComponent(st *clusterState, component string) error {
	if _, alive := componentPID(st, component); alive {
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logPath := filepath.Join(filepath.Dir(st.Dir), "logs", st.Name+"-"+component+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	// Every component's command line names a path inside st.Dir, which is
	// how componentPID tells this cluster's processes from any other's.
	args := append([]string{"component"}, st.Commands[component]...)
	cmd := exec.Command(self, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "TESTCLUSTER_DIR="+st.Dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlive `up`
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", component, err)
	}
	must(os.WriteFile(pidFile(st, component), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644))
	go cmd.Wait() // reap if it dies while we are still running
	return nil
}

func stopComponent(st *clusterState, component string) {
	pid, alive := componentPID(st, component)
	if !alive {
		os.Remove(pidFile(st, component))
		return
	}
	syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, alive := componentPID(st, component); !alive {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, alive := componentPID(st, component); alive {
		syscall.Kill(pid, syscall.SIGKILL)
		for i := 0; i < 100; i++ {
			if _, alive := componentPID(st, component); !alive {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	os.Remove(pidFile(st, component))
}

func down(dir string) int {
	states := allStates(dir)
	var wg sync.WaitGroup
	for _, st := range states {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := len(componentOrder) - 1; i >= 0; i-- {
				stopComponent(st, componentOrder[i])
			}
			os.Remove(filepath.Join(st.Dir, "state.json"))
		}()
	}
	wg.Wait()
	fmt.Printf("testcluster: %d cluster(s) down\n", len(states))
	return 0
}

func allStates(dir string) []*clusterState {
	var out []*clusterState
	for c := 'a'; c <= 'z'; c++ {
		if st, err := loadState(dir, string(c)); err == nil {
			out = append(out, st)
		}
	}
	return out
}

func loadState(dir, cluster string) (*clusterState, error) {
	letter := strings.TrimPrefix(cluster, "tender-")
	data, err := os.ReadFile(filepath.Join(dir, letter, "state.json"))
	if err != nil {
		return nil, fmt.Errorf("no cluster %q in %s", cluster, dir)
	}
	var st clusterState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, err
	}
	return &st, nil
}
