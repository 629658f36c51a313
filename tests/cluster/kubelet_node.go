package main

// Node registration and liveness: the node lifecycle controller marks a node
// NotReady (and later taints and evicts) when its Lease in kube-node-lease
// is not renewed, so the Lease is renewed every 10 s and the Ready
// condition's heartbeat every 20 s, like a real kubelet.

import (
	"context"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

const (
	kubeletVersion = "v1.37.2"
	leaseDuration  = 40
	leaseEvery     = 10 * time.Second
	statusEvery    = 20 * time.Second
)

type testNode struct {
	name string
	port int
}

// runNode registers n (retrying until the apiserver answers), then keeps its
// Lease and status fresh until ctx ends. Nodes are never deleted.
func (k *kubelet) runNode(ctx context.Context, n *testNode) {
	var uid types.UID
	for {
		var err error
		if uid, err = k.registerNode(ctx, n); err == nil {
			break
		}
		kubeletLog.Printf("node %s: register: %v", n.name, err)
		if !sleepCtx(ctx, 2*time.Second) {
			return
		}
	}
	kubeletLog.Printf("node %s registered (kubelet port %d)", n.name, n.port)
	lastStatus := time.Now()
	for sleepCtx(ctx, leaseEvery) {
		if err := k.renewLease(ctx, n, uid); err != nil {
			kubeletLog.Printf("node %s: lease: %v", n.name, err)
		}
		if time.Since(lastStatus) >= statusEvery-time.Second {
			newUID, err := k.updateNodeStatus(ctx, n)
			if apierrors.IsNotFound(err) { // someone deleted the Node: register again
				newUID, err = k.registerNode(ctx, n)
			}
			if err != nil {
				kubeletLog.Printf("node %s: status: %v", n.name, err)
				continue
			}
			uid, lastStatus = newUID, time.Now()
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func nodeLabels(name string) map[string]string {
	return map[string]string{
		"kubernetes.io/hostname": name,
		"kubernetes.io/os":       "linux",
		"kubernetes.io/arch":     "amd64",
	}
}

// registerNode creates the Node, or adopts the one a previous run of this
// cluster left, and writes a fresh status. It also renews the Lease at once
// so the node is Ready without waiting a renewal period.
func (k *kubelet) registerNode(ctx context.Context, n *testNode) (types.UID, error) {
	nodes := k.cs.CoreV1().Nodes()
	_, err := nodes.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: nodeLabels(n.name)}}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			node, err := nodes.Get(ctx, n.name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if node.Labels == nil {
				node.Labels = map[string]string{}
			}
			for key, v := range nodeLabels(n.name) {
				node.Labels[key] = v
			}
			_, err = nodes.Update(ctx, node, metav1.UpdateOptions{})
			return err
		})
	}
	if err != nil {
		return "", err
	}
	uid, err := k.updateNodeStatus(ctx, n)
	if err != nil {
		return "", err
	}
	return uid, k.renewLease(ctx, n, uid)
}

// updateNodeStatus writes the node's status, refreshing heartbeats and
// keeping each condition's lastTransitionTime while its status is unchanged.
func (k *kubelet) updateNodeStatus(ctx context.Context, n *testNode) (types.UID, error) {
	var uid types.UID
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := k.cs.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		setNodeStatus(node, n, time.Now())
		updated, err := k.cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
		if err == nil {
			uid = updated.UID
		}
		return err
	})
	return uid, err
}

func setNodeStatus(node *corev1.Node, n *testNode, now time.Time) {
	res := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("8"),
		corev1.ResourceMemory:           resource.MustParse("16Gi"),
		corev1.ResourcePods:             resource.MustParse("110"),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
	st := &node.Status
	st.Capacity, st.Allocatable = res, res.DeepCopy()
	st.Phase = corev1.NodeRunning
	st.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "127.0.0.1"},
		{Type: corev1.NodeHostName, Address: n.name},
	}
	st.DaemonEndpoints.KubeletEndpoint.Port = int32(n.port)
	st.NodeInfo = corev1.NodeSystemInfo{
		MachineID:               n.name,
		SystemUUID:              n.name,
		BootID:                  bootID,
		KernelVersion:           "6.1.0-tender",
		OSImage:                 "Tender test node",
		ContainerRuntimeVersion: "tender-test://1.0",
		KubeletVersion:          kubeletVersion,
		OperatingSystem:         "linux",
		Architecture:            "amd64",
	}
	want := []corev1.NodeCondition{
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "kubelet has no disk pressure"},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", Message: "kubelet has sufficient PID available"},
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status"},
	}
	t := metav1.NewTime(now)
	for i := range want {
		want[i].LastHeartbeatTime, want[i].LastTransitionTime = t, t
		for _, old := range st.Conditions {
			if old.Type == want[i].Type && old.Status == want[i].Status && !old.LastTransitionTime.IsZero() {
				want[i].LastTransitionTime = old.LastTransitionTime
			}
		}
	}
	// Keep conditions other components own (e.g. NetworkUnavailable).
	for _, old := range st.Conditions {
		switch old.Type {
		case corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure, corev1.NodeReady:
		default:
			want = append(want, old)
		}
	}
	st.Conditions = want
}

// bootID changes per kubelet process, as after a reboot.
var bootID = randHex(16)

func (k *kubelet) renewLease(ctx context.Context, n *testNode, uid types.UID) error {
	leases := k.cs.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	owner := []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: n.name, UID: uid}}
	spec := coordinationv1.LeaseSpec{
		HolderIdentity:       ptr.To(n.name),
		LeaseDurationSeconds: ptr.To[int32](leaseDuration),
		RenewTime:            &metav1.MicroTime{Time: time.Now()},
	}
	lease, err := leases.Get(ctx, n.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: n.name, Namespace: corev1.NamespaceNodeLease, OwnerReferences: owner},
			Spec:       spec,
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	lease.Spec.HolderIdentity, lease.Spec.LeaseDurationSeconds, lease.Spec.RenewTime = spec.HolderIdentity, spec.LeaseDurationSeconds, spec.RenewTime
	if uid != "" {
		lease.OwnerReferences = owner
	}
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	return err
}
