package main

// Process containers: a container whose command[0] is python3 or python
// (any image) runs as a real host process, the host's Python, on the
// emulated pod network (kubelet_podnet.go). Everything else runs a stand-in.

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// processArgv is the argv after the interpreter (command[1:] + args, with
// $(VAR) expanded) when c is a process container, else nil.
func processArgv(c *corev1.Container, env map[string]string) []string {
	if len(c.Command) == 0 {
		return nil
	}
	switch path.Base(c.Command[0]) {
	case "python3", "python":
	default:
		return nil
	}
	return append(expandAll(c.Command[1:], env), expandAll(c.Args, env)...)
}

var hostPythonOnce struct {
	sync.Once
	path string
	err  error
}

// hostPython is the host's python3 executable (a pyenv shim or a wrapper
// resolved to the real interpreter once, so each start is quick).
func hostPython() (string, error) {
	h := &hostPythonOnce
	h.Do(func() {
		if h.path, h.err = exec.LookPath("python3"); h.err != nil {
			return
		}
		out, err := exec.Command(h.path, "-c", "import sys; print(sys.executable)").Output()
		if real := strings.TrimSpace(string(out)); err == nil && real != "" {
			h.path = real
		}
	})
	return h.path, h.err
}

// processEnv is the process's environment: the container's, PATH as stock
// images set it when the container sets none, and the pod network's
// sitecustomize first on PYTHONPATH.
func processEnv(ctrEnv, netEnv map[string]string, siteDir string) []string {
	env := map[string]string{"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	for k, v := range ctrEnv {
		env[k] = v
	}
	for k, v := range netEnv {
		env[k] = v
	}
	env["PYTHONPATH"] = siteDir
	if old := ctrEnv["PYTHONPATH"]; old != "" {
		env["PYTHONPATH"] += ":" + old
	}
	var out []string
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// startProcess fills p (from newProc) by running python with argv: its
// output lines are the container's log, its exit code p's, SIGTERM goes
// to it and p.exit kills its process group.
func (r *podRecord) startProcess(p *proc, argv []string) {
	py, err := hostPython()
	if err == nil {
		err = r.k.net.start(r.k)
	}
	if err != nil {
		p.println("exec python3: " + err.Error())
		p.exit(127)
		return
	}
	token := randHex(16)
	revoke := r.k.net.register(token, r, p)
	cmd := exec.Command(py, argv...)
	cmd.Dir = p.root
	if cmd.Dir == "" {
		cmd.Dir = os.TempDir()
	}
	cmd.Env = processEnv(p.env, r.k.net.env(r.k, token, r.ip, r.ns), r.k.net.dir)
	out, errOut := &logWriter{p: p}, &logWriter{p: p}
	cmd.Stdout, cmd.Stderr = out, errOut
	// Its own process group (killed whole), and SIGKILL if the kubelet dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		revoke()
		p.println("exec python3: " + err.Error())
		p.exit(128)
		return
	}
	pid := cmd.Process.Pid
	p.handleTerm(func() { syscall.Kill(pid, syscall.SIGTERM) })
	p.atExit(func() {
		syscall.Kill(-pid, syscall.SIGKILL)
		revoke()
	})
	go func() {
		err := cmd.Wait()
		syscall.Kill(-pid, syscall.SIGKILL) // what it left behind
		out.flush()
		errOut.flush()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		} else if err != nil {
			code = 128
		}
		p.exit(code)
	}()
}

// logWriter turns a process's output into log lines.
type logWriter struct {
	p   *proc
	mu  sync.Mutex
	buf []byte
}

func (w *logWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.p.logs.add(w.p.attempt, string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(b), nil
}

// flush logs what the process printed without a final newline.
func (w *logWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.p.logs.add(w.p.attempt, string(w.buf))
		w.buf = nil
	}
}

// Active deadline -----------------------------------------------------------

// activeDeadline is when spec.activeDeadlineSeconds ends the pod, or zero.
func (r *podRecord) activeDeadline() time.Time {
	if s := r.latest.Spec.ActiveDeadlineSeconds; s != nil {
		return r.startTime.Add(time.Duration(*s) * time.Second)
	}
	return time.Time{}
}

// enforceDeadlineLocked kills every container of a pod past its active
// deadline (exit 137, as SIGKILL) and marks the pod Failed/DeadlineExceeded.
func (r *podRecord) enforceDeadlineLocked(now time.Time) {
	at := r.activeDeadline()
	if at.IsZero() || now.Before(at) || r.stopped || r.deleting {
		return
	}
	for _, c := range r.all() {
		c.restartAt = time.Time{}
		if !c.running {
			continue
		}
		c.proc.exit(137)
		c.running = false
		c.term = &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "Error",
			StartedAt: metav1.NewTime(c.started), FinishedAt: metav1.Now(), ContainerID: c.id}
		c.logs.endAttempt(c.restarts)
	}
	r.stopped, r.deadlineExceeded = true, true
	kubeletLog.Printf("pod %s: active deadline exceeded; containers killed", r.key)
}

const deadlineMessage = "Pod was active on the node longer than the specified deadline"
