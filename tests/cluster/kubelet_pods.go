package main

// The pods bound to our nodes: one informer per node feeds each pod's
// podRecord (kubelet_podworker.go), found here by UID, name or sandbox id.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

const (
	readyAnnotation = "testcluster.tender.dev/ready"
	dropAnnotation  = "testcluster.tender.dev/drop-connections"
	restartDelay    = time.Second
)

type kubelet struct {
	ctx     context.Context
	cs      kubernetes.Interface
	podsDir string
	nodes   []*testNode
	// streamIdle: see kubeletConfig.streamIdle.
	streamIdle time.Duration
	ips        *ipAllocator
	net        podNet // for process containers (kubelet_podnet.go)
	wg         sync.WaitGroup

	mu        sync.Mutex
	pods      map[types.UID]*podRecord
	byName    map[string]*podRecord // "namespace/name"
	bySandbox map[string]*podRecord
	// finished remembers pods whose life this process ended, so that
	// informer events still in flight for them do not start them again.
	finished map[types.UID]time.Time
}

func newKubelet(ctx context.Context, cs kubernetes.Interface, cfg *kubeletConfig, podsDir string) *kubelet {
	k := &kubelet{
		ctx: ctx, cs: cs, podsDir: podsDir, ips: newIPAllocator(cfg.subnet), streamIdle: cfg.streamIdle,
		pods: map[types.UID]*podRecord{}, byName: map[string]*podRecord{},
		bySandbox: map[string]*podRecord{}, finished: map[types.UID]time.Time{},
	}
	for i := range cfg.nodes {
		k.nodes = append(k.nodes, &testNode{name: nodeName(cfg.cluster, i+1), port: cfg.ports[i]})
	}
	return k
}

func nodeName(cluster string, i int) string { return cluster + "-node-" + itoa(i) }

func randHex(nbytes int) string {
	b := make([]byte, nbytes)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// watchPods runs an informer on the pods bound to n.
func (k *kubelet) watchPods(ctx context.Context, n *testNode) {
	factory := informers.NewSharedInformerFactoryWithOptions(k.cs, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", n.name).String()
		}))
	inf := factory.Core().V1().Pods().Informer()
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { k.observe(n.name, obj) },
		UpdateFunc: func(_, obj any) { k.observe(n.name, obj) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				k.forget(pod.UID)
			}
		},
	})
	factory.Start(ctx.Done())
}

func (k *kubelet) observe(node string, obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ctx.Err() != nil {
		return
	}
	if _, done := k.finished[pod.UID]; done {
		return
	}
	if r := k.pods[pod.UID]; r != nil {
		r.setLatest(pod)
		return
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		// Finished before this process started: nothing to run, but finish
		// its deletion as a kubelet does.
		if pod.DeletionTimestamp != nil {
			k.finished[pod.UID] = time.Now()
			go k.deleteNow(pod.Namespace, pod.Name, pod.UID)
		}
		return
	}
	for uid, t := range k.finished {
		if time.Since(t) > 10*time.Minute {
			delete(k.finished, uid)
		}
	}
	r := newPodRecord(k, node, pod)
	k.pods[pod.UID], k.byName[r.key], k.bySandbox[r.sandbox] = r, r, r
	k.wg.Add(1)
	go r.run()
}

// forget handles the pod object's removal (including a force delete).
func (k *kubelet) forget(uid types.UID) {
	k.mu.Lock()
	r := k.pods[uid]
	delete(k.finished, uid)
	k.mu.Unlock()
	if r != nil {
		r.goneOnce.Do(func() { close(r.gone) })
	}
}

// deleteNow removes a pod whose containers are stopped, guarded by its UID
// so that a new pod of the same name is never hit.
func (k *kubelet) deleteNow(ns, name string, uid types.UID) error {
	err := k.cs.CoreV1().Pods(ns).Delete(k.ctx, name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &uid},
	})
	if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	kubeletLog.Printf("pod %s/%s: delete: %v", ns, name, err)
	return err
}

func (k *kubelet) lookup(node, ns, name string) *podRecord {
	k.mu.Lock()
	defer k.mu.Unlock()
	if r := k.byName[ns+"/"+name]; r != nil && r.node == node {
		return r
	}
	return nil
}

func (k *kubelet) lookupSandbox(id string) *podRecord {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.bySandbox[id]
}

// waitPods waits (bounded) for the workers to stop their containers after
// the process context ends.
func (k *kubelet) waitPods(limit time.Duration) {
	done := make(chan struct{})
	go func() { k.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		kubeletLog.Print("some pod workers did not stop in time")
	}
}
