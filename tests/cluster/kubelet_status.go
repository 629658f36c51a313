package main

// Pod status as a kubelet reports it, plus the small helpers the pod worker
// needs (environment, $(VAR) expansion, atomic JSON files).

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// buildStatusLocked computes the fields this kubelet owns. Conditions carry
// no times here (applyStatus sets them) so that equal results mean "nothing
// to write".
func (r *podRecord) buildStatusLocked(now time.Time) corev1.PodStatus {
	pod := r.latest
	hold := pod.Annotations[readyAnnotation] == "false"
	st := corev1.PodStatus{
		HostIP:    "127.0.0.1",
		HostIPs:   []corev1.HostIP{{IP: "127.0.0.1"}},
		StartTime: &r.startTime,
	}
	if r.ip != "" {
		st.PodIP, st.PodIPs = r.ip, []corev1.PodIP{{IP: r.ip}}
	}
	var unready []string
	for _, c := range r.init {
		cs := c.status(now, hold)
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
		if c.sidecar && !cs.Ready {
			unready = append(unready, c.spec.Name)
		}
	}
	live, failed := false, false
	for _, c := range r.ctrs {
		cs := c.status(now, hold)
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
		if !cs.Ready {
			unready = append(unready, c.spec.Name)
		}
		live = live || c.running || !c.restartAt.IsZero()
		failed = failed || (c.term != nil && c.term.ExitCode != 0)
	}
	switch {
	case r.deadlineExceeded:
		st.Phase, st.Reason, st.Message = corev1.PodFailed, "DeadlineExceeded", deadlineMessage
	case live:
		st.Phase = corev1.PodRunning
	case failed:
		st.Phase = corev1.PodFailed
	default:
		st.Phase = corev1.PodSucceeded
	}

	cond := func(t corev1.PodConditionType, ok bool, reason, msg string) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionTrue}
		if !ok {
			c.Status, c.Reason, c.Message = corev1.ConditionFalse, reason, msg
		}
		return c
	}
	msg := fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " "))
	if hold {
		msg += " (held by annotation " + readyAnnotation + `="false")`
	}
	containersReady := len(unready) == 0
	if st.Phase == corev1.PodSucceeded {
		msg, containersReady = "", false
	}
	ready := cond(corev1.PodReady, containersReady, "ContainersNotReady", msg)
	if ready.Status == corev1.ConditionTrue {
		if gates := unmetGates(pod); gates != "" {
			ready = cond(corev1.PodReady, false, "ReadinessGatesNotReady", gates)
		}
	}
	if st.Phase == corev1.PodSucceeded {
		ready.Reason = "PodCompleted"
	}
	st.Conditions = []corev1.PodCondition{
		cond(corev1.PodReadyToStartContainers, !r.stopped, "", ""),
		cond(corev1.PodInitialized, true, "", ""),
		ready,
		cond(corev1.ContainersReady, containersReady, ready.Reason, msg),
		cond(corev1.PodScheduled, true, "", ""),
	}
	if st.Phase == corev1.PodSucceeded {
		st.Conditions[3].Reason = "PodCompleted"
	}
	return st
}

func unmetGates(pod *corev1.Pod) string {
	var msgs []string
	for _, g := range pod.Spec.ReadinessGates {
		found := false
		for _, c := range pod.Status.Conditions {
			if c.Type == g.ConditionType {
				found = true
				if c.Status != corev1.ConditionTrue {
					msgs = append(msgs, fmt.Sprintf("the status of pod readiness gate %q is not \"True\", but %v", g.ConditionType, c.Status))
				}
			}
		}
		if !found {
			msgs = append(msgs, fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", g.ConditionType))
		}
	}
	return strings.Join(msgs, ", ")
}

func (c *ctr) status(now time.Time, hold bool) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{
		Name: c.spec.Name, Image: c.spec.Image, ImageID: imageID(c.spec.Image),
		ContainerID: c.id, RestartCount: c.restarts, Started: ptr.To(c.running),
	}
	switch {
	case c.running:
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(c.started)}
		cs.Ready = !hold && (c.spec.ReadinessProbe == nil || c.probeReady)
	case c.term != nil:
		cs.State.Terminated = c.term
		cs.Ready = c.init && c.term.ExitCode == 0 // a completed init container counts as ready
	default:
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
	}
	if c.last != nil {
		cs.LastTerminationState.Terminated = c.last
	}
	return cs
}

func imageID(image string) string {
	sum := sha256.Sum256([]byte(image))
	return "docker.io/tender/fake@sha256:" + hex.EncodeToString(sum[:])
}

func statusEqual(a, b *corev1.PodStatus) bool { return equality.Semantic.DeepEqual(a, b) }

// applyStatus puts ours into pod's status, keeping what other components own
// (other conditions, qosClass, nominatedNodeName, resource claims, ...) and
// each condition's lastTransitionTime while its status is unchanged.
func applyStatus(pod *corev1.Pod, ours corev1.PodStatus, now time.Time) {
	old := pod.Status
	st := &pod.Status
	st.Phase, st.Message, st.Reason = ours.Phase, ours.Message, ours.Reason
	st.HostIP, st.HostIPs, st.PodIP, st.PodIPs = ours.HostIP, ours.HostIPs, ours.PodIP, ours.PodIPs
	st.StartTime = ours.StartTime
	st.InitContainerStatuses, st.ContainerStatuses = ours.InitContainerStatuses, ours.ContainerStatuses
	st.ObservedGeneration = pod.Generation
	st.Conditions = nil
	mine := map[corev1.PodConditionType]bool{}
	for _, c := range ours.Conditions {
		mine[c.Type] = true
		c.LastTransitionTime = metav1.NewTime(now)
		c.ObservedGeneration = pod.Generation
		for _, o := range old.Conditions {
			if o.Type == c.Type && o.Status == c.Status && !o.LastTransitionTime.IsZero() {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
		st.Conditions = append(st.Conditions, c)
	}
	for _, o := range old.Conditions {
		if !mine[o.Type] {
			st.Conditions = append(st.Conditions, o)
		}
	}
}

// writeStatus writes ours with UpdateStatus, re-reading the pod on
// conflicts; errGone means the pod (this UID) no longer exists.
func (r *podRecord) writeStatus(ours corev1.PodStatus) error {
	r.mu.Lock()
	pod := r.latest
	r.mu.Unlock()
	pods := r.k.cs.CoreV1().Pods(r.ns)
	for attempt := 0; ; attempt++ {
		p := pod.DeepCopy()
		applyStatus(p, ours, time.Now())
		_, err := pods.UpdateStatus(r.k.ctx, p, metav1.UpdateOptions{})
		switch {
		case err == nil:
			return nil
		case kerrors.IsNotFound(err):
			return errGone
		case !kerrors.IsConflict(err) || attempt >= 5:
			return err
		}
		if pod, err = pods.Get(r.k.ctx, r.name, metav1.GetOptions{}); err != nil {
			if kerrors.IsNotFound(err) {
				return errGone
			}
			return err
		}
		if pod.UID != r.uid {
			return errGone
		}
	}
}

// Environment ------------------------------------------------------------------

// containerEnv resolves the env a stand-in sees: literal values (with
// $(VAR) expansion) and the downward-API fields. ConfigMap/Secret refs are
// not resolved; no stand-in reads them.
func (r *podRecord) containerEnv(c *corev1.Container) map[string]string {
	pod := r.latest
	env := map[string]string{"HOSTNAME": r.hostname}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = expandVars(e.Value, env)
		case e.ValueFrom.FieldRef != nil:
			env[e.Name] = r.fieldValue(pod, e.ValueFrom.FieldRef.FieldPath)
		}
	}
	return env
}

func (r *podRecord) fieldValue(pod *corev1.Pod, path string) string {
	switch path {
	case "metadata.name":
		return pod.Name
	case "metadata.namespace":
		return pod.Namespace
	case "metadata.uid":
		return string(pod.UID)
	case "spec.nodeName":
		return pod.Spec.NodeName
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName
	case "status.podIP", "status.podIPs":
		return r.ip
	case "status.hostIP", "status.hostIPs":
		return "127.0.0.1"
	}
	for prefix, m := range map[string]map[string]string{"metadata.labels": pod.Labels, "metadata.annotations": pod.Annotations} {
		if key, ok := strings.CutPrefix(path, prefix+"['"); ok {
			return m[strings.TrimSuffix(key, "']")]
		}
	}
	return ""
}

// expandVars does the kubelet's $(VAR) expansion: unknown references stay
// as written and $$ escapes a $.
func expandVars(s string, env map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] != '$' || i+1 == len(s):
			b.WriteByte(s[i])
		case s[i+1] == '$':
			b.WriteByte('$')
			i++
		case s[i+1] == '(':
			end := strings.IndexByte(s[i:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+end]
			if v, ok := env[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+end+1])
			}
			i += end
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func expandAll(words []string, env map[string]string) []string {
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = expandVars(w, env)
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }

// writeJSONAtomic writes v to file via a temporary file and a rename, so
// readers never see a partial file.
func writeJSONAtomic(file string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}
