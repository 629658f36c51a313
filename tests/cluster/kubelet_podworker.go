package main

// One pod's life. Its worker goroutine (run) owns it: it starts the
// containers' stand-ins, restarts them per restartPolicy, runs graceful
// deletion, and writes status whenever what it would report changes. The
// informer handlers (kubelet_pods.go) only hand it the newest pod object;
// the HTTP handlers read it under mu.

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

type podRecord struct {
	k                   *kubelet
	node, ns, name, key string
	uid                 types.UID
	sandbox             string // stands for the CRI sandbox id in port-forward errors
	ip, hostname        string
	startTime           metav1.Time

	updates    chan struct{} // a newer pod object is in latest
	exits      chan exitEvent
	gone       chan struct{} // the pod object was deleted
	goneOnce   sync.Once
	finished   chan struct{} // the worker is done
	stateKick  chan struct{}
	probeKick  chan struct{} // a readiness probe changed a container's readiness
	writerDone chan struct{}

	mu      sync.Mutex // the worker writes, HTTP handlers read
	latest  *corev1.Pod
	init    []*ctr // spec.initContainers (plain ones and sidecars)
	ctrs    []*ctr // spec.containers
	stopped bool   // containers stopped for good
	// deadlineExceeded: spec.activeDeadlineSeconds ended the pod (Failed).
	deadlineExceeded bool
	fwd              map[io.Closer]struct{}

	// Worker-only state.
	dropVal    *string
	deleting   bool
	deadline   time.Time // end of the deletion grace period
	retryAt    time.Time // after an API error
	failures   int       // consecutive API errors, for backoff
	lastStatus *corev1.PodStatus
}

type exitEvent struct {
	c *ctr
	p *proc
}

// ctr is one container of the pod.
type ctr struct {
	spec     corev1.Container
	init     bool // a plain init container: reported Completed at once
	sidecar  bool // a restartable init container: runs like a container
	logs     *logBuffer
	id       string
	restarts int32
	running  bool
	started  time.Time
	// probeReady is the readiness probe's verdict on the current run
	// (kubelet_probe.go); without a probe a running container is ready.
	probeReady bool
	term       *corev1.ContainerStateTerminated // state when not running
	last       *corev1.ContainerStateTerminated
	restartAt  time.Time // a restart is due then
	proc       *proc
}

func newPodRecord(k *kubelet, node string, pod *corev1.Pod) *podRecord {
	r := &podRecord{
		k: k, node: node, ns: pod.Namespace, name: pod.Name, key: pod.Namespace + "/" + pod.Name,
		uid: pod.UID, sandbox: randHex(32), hostname: podHostname(pod),
		startTime: metav1.Now(),
		updates:   make(chan struct{}, 1), exits: make(chan exitEvent, 16),
		gone: make(chan struct{}), finished: make(chan struct{}),
		stateKick: make(chan struct{}, 1), writerDone: make(chan struct{}),
		probeKick: make(chan struct{}, 1),
		latest:    pod, fwd: map[io.Closer]struct{}{},
	}
	if v, ok := pod.Annotations[dropAnnotation]; ok {
		r.dropVal = &v
	}
	// A pod this kubelet ran before it restarted keeps its IP and history.
	if pod.Status.StartTime != nil {
		r.startTime = *pod.Status.StartTime
	}
	if ip := pod.Status.PodIP; ip != "" && k.ips.reserve(ip) {
		r.ip = ip
	} else if ip, err := k.ips.allocate(); err == nil {
		r.ip = ip
	} else {
		kubeletLog.Printf("pod %s: %v", r.key, err)
	}
	for _, c := range pod.Spec.InitContainers {
		sidecar := c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		r.init = append(r.init, r.newCtr(c, !sidecar, sidecar, pod.Status.InitContainerStatuses))
	}
	for _, c := range pod.Spec.Containers {
		r.ctrs = append(r.ctrs, r.newCtr(c, false, false, pod.Status.ContainerStatuses))
	}
	return r
}

func (r *podRecord) newCtr(spec corev1.Container, init, sidecar bool, old []corev1.ContainerStatus) *ctr {
	c := &ctr{spec: spec, init: init, sidecar: sidecar, logs: newLogBuffer()}
	for _, s := range old {
		if s.Name != spec.Name {
			continue
		}
		c.restarts = s.RestartCount
		c.last = s.LastTerminationState.Terminated
		// The apiserver forbids reviving a container that may not restart.
		if t := s.State.Terminated; t != nil && (init || !r.shouldRestart(c, t.ExitCode)) {
			c.term, c.id = t, t.ContainerID
		}
	}
	return c
}

// all lists the init containers (plain and sidecars), then the others.
func (r *podRecord) all() []*ctr { return append(append([]*ctr{}, r.init...), r.ctrs...) }

func podHostname(pod *corev1.Pod) string {
	h := pod.Name
	if pod.Spec.Hostname != "" {
		h = pod.Spec.Hostname
	}
	if len(h) > 63 {
		h = h[:63]
	}
	return h
}

func (r *podRecord) setLatest(pod *corev1.Pod) {
	r.mu.Lock()
	r.latest = pod
	r.mu.Unlock()
	select {
	case r.updates <- struct{}{}:
	default:
	}
}

func (r *podRecord) shouldRestart(c *ctr, code int32) bool {
	policy := r.latest.Spec.RestartPolicy
	if c.sidecar {
		return true
	}
	if c.spec.RestartPolicy != nil {
		policy = corev1.RestartPolicy(*c.spec.RestartPolicy)
	}
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return code != 0
	}
	return true
}

// run is the pod's worker.
func (r *podRecord) run() {
	defer r.k.wg.Done()
	defer r.cleanup()
	go r.stateWriter()
	r.mu.Lock()
	for _, c := range r.all() {
		switch {
		case c.term != nil: // finished in an earlier run of this kubelet
		case c.init:
			now := metav1.Now()
			c.id = "tender://" + randHex(32)
			c.term = &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now, ContainerID: c.id}
		default:
			r.startLocked(c)
		}
	}
	r.mu.Unlock()
	kubeletLog.Printf("pod %s: started on %s with IP %s", r.key, r.node, r.ip)
	r.handleUpdate()
	for {
		r.tick()
		if r.sync() {
			return
		}
		var wake <-chan time.Time
		if at := r.nextWake(); !at.IsZero() {
			wake = time.After(time.Until(at))
		}
		select {
		case <-r.k.ctx.Done():
			return
		case <-r.gone:
			kubeletLog.Printf("pod %s: removed from the API; stopping its containers", r.key)
			return
		case <-r.updates:
			r.handleUpdate()
		case ev := <-r.exits:
			r.onExit(ev)
		case <-r.probeKick:
		case <-wake:
		}
	}
}

// startLocked starts (or restarts) c's stand-in.
func (r *podRecord) startLocked(c *ctr) {
	now := time.Now()
	c.id = "tender://" + randHex(32)
	c.running, c.term, c.restartAt, c.started, c.probeReady = true, nil, time.Time{}, now, false
	env := r.containerEnv(&c.spec)
	root, err := r.makeRootLocked(c)
	if err != nil {
		kubeletLog.Printf("pod %s: container %s: root directory: %v", r.key, c.spec.Name, err)
	}
	sub, args := commandLine(expandAll(c.spec.Command, env), expandAll(c.spec.Args, env))
	var ports []int32
	for _, p := range c.spec.Ports {
		if p.Protocol == "" || p.Protocol == corev1.ProtocolTCP {
			ports = append(ports, p.ContainerPort)
		}
	}
	cfg := procConfig{
		hostname: r.hostname, sub: sub, args: args, env: env, ports: ports,
		logs: c.logs, attempt: c.restarts, onPorts: r.kickState, root: root,
	}
	var p *proc
	if argv := processArgv(&c.spec, env); argv != nil {
		p = newProc(cfg) // a real process (kubelet_process.go)
		r.startProcess(p, argv)
	} else {
		p = startStandIn(cfg)
	}
	c.proc = p
	if probe := c.spec.ReadinessProbe; probe != nil {
		go r.runReadinessProbe(c, p, *probe, now)
	}
	go func() {
		select {
		case <-p.done:
			select {
			case r.exits <- exitEvent{c, p}:
			case <-r.finished:
			}
		case <-r.finished:
		}
	}()
}

// stopLocked kills c's stand-in; a container stopped by the kubelet is
// reported as exiting 0 (Completed).
func (r *podRecord) stopLocked(c *ctr) {
	c.restartAt = time.Time{}
	if !c.running {
		return
	}
	c.proc.exit(0)
	c.running = false
	c.term = &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed",
		StartedAt: metav1.NewTime(c.started), FinishedAt: metav1.Now(), ContainerID: c.id}
	c.logs.endAttempt(c.restarts)
}

func (r *podRecord) stopAllLocked() {
	for _, c := range r.all() {
		r.stopLocked(c)
	}
	r.stopped = true
}

func (r *podRecord) onExit(ev exitEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := ev.c
	if c.proc != ev.p || !c.running {
		return // stopped by us, already recorded
	}
	code := int32(ev.p.exitCode())
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	c.running = false
	c.term = &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason,
		StartedAt: metav1.NewTime(c.started), FinishedAt: metav1.Now(), ContainerID: c.id}
	c.logs.endAttempt(c.restarts)
	kubeletLog.Printf("pod %s: container %s exited with %d", r.key, c.spec.Name, code)
	if !r.deleting && !r.stopped && r.shouldRestart(c, code) {
		c.restartAt = time.Now().Add(restartDelay)
	}
}

// handleUpdate reacts to a new pod object: the drop-connections hook and
// the start or shortening of a graceful deletion.
func (r *podRecord) handleUpdate() {
	r.mu.Lock()
	pod := r.latest
	r.mu.Unlock()
	if v, ok := pod.Annotations[dropAnnotation]; !ok {
		r.dropVal = nil
	} else if r.dropVal == nil || *r.dropVal != v {
		r.dropVal = &v
		r.dropConnections()
	}
	if pod.DeletionTimestamp == nil {
		return
	}
	grace := int64(30)
	if pod.DeletionGracePeriodSeconds != nil {
		grace = *pod.DeletionGracePeriodSeconds
	} else if pod.Spec.TerminationGracePeriodSeconds != nil {
		grace = *pod.Spec.TerminationGracePeriodSeconds
	}
	deadline := time.Now().Add(time.Duration(grace) * time.Second)
	if !r.deleting || deadline.Before(r.deadline) {
		kubeletLog.Printf("pod %s: terminating, stopping containers in %ds", r.key, grace)
		r.deleting, r.deadline = true, deadline
		// SIGTERM: each program reacts as it would (proc.onTerm).
		r.mu.Lock()
		for _, c := range r.all() {
			if c.running {
				c.proc.sigterm()
			}
		}
		r.mu.Unlock()
	}
}

// tick does what is due: restarts, the end of a grace period, and the
// stop of sidecars once the main containers are done.
func (r *podRecord) tick() {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	r.enforceDeadlineLocked(now)
	if r.stopped {
		return
	}
	mainLive := false
	for _, c := range r.ctrs {
		mainLive = mainLive || c.running || !c.restartAt.IsZero()
	}
	if r.deleting {
		if !now.Before(r.deadline) || !mainLive {
			r.stopAllLocked()
			kubeletLog.Printf("pod %s: containers stopped", r.key)
		}
		return
	}
	for _, c := range r.all() {
		if !c.restartAt.IsZero() && !now.Before(c.restartAt) {
			c.last, c.restarts = c.term, c.restarts+1
			r.startLocked(c)
		}
	}
	if !mainLive {
		for _, c := range r.init {
			r.stopLocked(c)
		}
	}
}

func (r *podRecord) nextWake() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var at time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	consider(r.retryAt)
	if !r.stopped && !r.deleting {
		consider(r.activeDeadline())
	}
	if r.deleting && !r.stopped {
		consider(r.deadline)
	}
	for _, c := range r.all() {
		consider(c.restartAt)
	}
	return at
}

var errGone = errors.New("pod is gone")

// sync writes status if it changed and, once a deleted pod's containers
// are stopped, removes the pod. It returns true when the pod's life is over.
func (r *podRecord) sync() bool {
	if !r.retryAt.IsZero() && time.Now().Before(r.retryAt) {
		return false
	}
	r.retryAt = time.Time{}
	r.mu.Lock()
	st := r.buildStatusLocked(time.Now())
	finalize := r.stopped && r.deleting
	r.mu.Unlock()
	if r.lastStatus == nil || !statusEqual(r.lastStatus, &st) {
		err := r.writeStatus(st)
		if errors.Is(err, errGone) {
			return true
		}
		if err != nil {
			kubeletLog.Printf("pod %s: status: %v", r.key, err)
			r.backoff()
			return false
		}
		r.lastStatus = &st
	}
	r.failures = 0
	if finalize {
		if r.k.deleteNow(r.ns, r.name, r.uid) != nil {
			r.backoff()
			return false
		}
		kubeletLog.Printf("pod %s: deleted", r.key)
		return true
	}
	return false
}

// backoff schedules a retry after an API error: 1 s, doubling up to 16 s,
// so that an apiserver outage does not flood the log.
func (r *podRecord) backoff() {
	r.retryAt = time.Now().Add(time.Second << min(r.failures, 4))
	r.failures++
}

// cleanup stops whatever still runs and forgets the pod.
func (r *podRecord) cleanup() {
	r.mu.Lock()
	r.stopAllLocked()
	for _, c := range r.all() {
		c.logs.close()
	}
	fwd := r.fwd
	r.fwd = map[io.Closer]struct{}{}
	r.mu.Unlock()
	// The sandbox is gone: its port-forward sessions end, and kubectl
	// reports the lost connection (as the upstream e2e test expects).
	for c := range fwd {
		c.Close()
	}
	close(r.finished)
	<-r.writerDone
	os.RemoveAll(r.fsDir())
	k := r.k
	k.mu.Lock()
	delete(k.pods, r.uid)
	delete(k.bySandbox, r.sandbox)
	if k.byName[r.key] == r {
		delete(k.byName, r.key)
	}
	if k.ctx.Err() == nil {
		k.finished[r.uid] = time.Now()
	}
	k.mu.Unlock()
	k.ips.release(r.ip)
}

// Port-forward bookkeeping ---------------------------------------------------

// portAddr is the real address standing for containerPort port, or "".
func (r *podRecord) portAddr(port int32) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return ""
	}
	for _, c := range r.all() {
		if c.running {
			if a := c.proc.addr(port); a != "" {
				return a
			}
		}
	}
	return ""
}

// track registers a connection of an open port-forward so that the
// drop-connections hook can cut it; the returned func unregisters it.
func (r *podRecord) track(c io.Closer) func() {
	r.mu.Lock()
	r.fwd[c] = struct{}{}
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		delete(r.fwd, c)
		r.mu.Unlock()
	}
}

// dropConnections simulates a network drop: it closes every port-forward
// connection to the pod (apiserver side and stand-in side) at once.
func (r *podRecord) dropConnections() {
	r.mu.Lock()
	conns := r.fwd
	r.fwd = map[io.Closer]struct{}{}
	r.mu.Unlock()
	for c := range conns {
		c.Close()
	}
	kubeletLog.Printf("pod %s: drop-connections: closed %d connections", r.key, len(conns))
}

// State file -----------------------------------------------------------------

func (r *podRecord) kickState() {
	select {
	case r.stateKick <- struct{}{}:
	default:
	}
}

// stateWriter keeps STATE_DIR/pods/<ns>_<name>.json in step with the stand-ins'
// listeners; one goroutine per pod keeps the writes in order.
func (r *podRecord) stateWriter() {
	defer close(r.writerDone)
	file := filepath.Join(r.k.podsDir, r.ns+"_"+r.name+".json")
	for {
		select {
		case <-r.stateKick:
			ports, udp, roots := map[string]string{}, map[string]string{}, map[string]string{}
			r.mu.Lock()
			for _, c := range r.all() {
				if c.running {
					for port, addr := range c.proc.portAddrs() {
						if _, dup := ports[itoa(int(port))]; !dup {
							ports[itoa(int(port))] = addr
						}
					}
					for port, addr := range c.proc.udpPortAddrs() {
						if _, dup := udp[itoa(int(port))]; !dup {
							udp[itoa(int(port))] = addr
						}
					}
					roots[c.spec.Name] = c.proc.root
				}
			}
			r.mu.Unlock()
			state := map[string]any{"uid": r.uid, "ports": ports, "udp_ports": udp, "roots": roots}
			if err := writeJSONAtomic(file, state); err != nil {
				kubeletLog.Printf("pod %s: state file: %v", r.key, err)
			}
		case <-r.finished:
			os.Remove(file)
			return
		}
	}
}

// Container filesystems ---------------------------------------------------------

// fsDir holds the pod's container roots (one directory per container) and
// its emptyDir volumes (.volumes/NAME), beside the pod's state file.
func (r *podRecord) fsDir() string { return filepath.Join(r.k.podsDir, r.ns+"_"+r.name) }

// makeRootLocked lays out a fresh root for a run of c (a restarted container
// loses what it wrote, as with a container's writable layer): /etc/hostname
// and /etc/hosts as the kubelet mounts them, /tmp, and its emptyDir volume
// mounts, which link to the pod's volume directories and so outlive
// restarts and are shared between the pod's containers.
func (r *podRecord) makeRootLocked(c *ctr) (string, error) {
	root := filepath.Join(r.fsDir(), c.spec.Name)
	if err := os.RemoveAll(root); err != nil {
		return "", err
	}
	for _, d := range []string{"etc", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return "", err
		}
	}
	hosts := "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if r.ip != "" {
		hosts += r.ip + "\t" + r.hostname + "\n"
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "hosts"), []byte(hosts), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "hostname"), []byte(r.hostname+"\n"), 0o644); err != nil {
		return "", err
	}
	emptyDirs := map[string]bool{}
	for _, v := range r.latest.Spec.Volumes {
		if v.EmptyDir != nil {
			emptyDirs[v.Name] = true
		}
	}
	for _, m := range c.spec.VolumeMounts {
		if !emptyDirs[m.Name] {
			continue
		}
		vol := filepath.Join(r.fsDir(), ".volumes", m.Name)
		at := containerPath(root, "/", m.MountPath)
		if err := os.MkdirAll(vol, 0o777); err != nil {
			return "", err
		}
		os.RemoveAll(at)
		if err := os.MkdirAll(filepath.Dir(at), 0o755); err != nil {
			return "", err
		}
		if err := os.Symlink(vol, at); err != nil {
			return "", err
		}
	}
	return root, nil
}
