package main

// The shell of a stand-in container: what netexec's /shell and exec probes
// run. There is no image, so there is no /bin/sh to start; instead a POSIX
// shell interpreter (mvdan.cc/sh) runs the script in-process, with the
// container's root directory (proc.root, a real directory) standing for
// "/". Supported:
//
//   - the shell language itself (;, &&, ||, if, for, $(...), $VAR,
//     redirections such as > /tmp/f and >> /tmp/f, exit N) and its builtins
//     (echo, printf, test / [ ], true, false, cd, pwd, read, ...);
//   - the commands cat, touch, rm [-f] [-r], mkdir [-p], ls, sleep,
//     hostname, env / printenv, also when named by path (/bin/cat);
//   - anything else fails as a missing program does: "sh: NAME: not found",
//     exit status 127.
//
// Paths are the container's: /tmp/ready is ROOT/tmp/ready. The kubelet
// gives each container a root with /etc/hostname and /etc/hosts (as a
// kubelet mounts them) and links its emptyDir volumes into it.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/interp"
	"mvdan.cc/sh/v3/syntax"
)

// containerPath maps a path inside the container to the real one under
// root; ".." cannot climb out of root.
func containerPath(root, dir, p string) string {
	if !path.IsAbs(p) {
		p = path.Join(dir, p)
	}
	return filepath.Join(root, filepath.FromSlash(path.Clean("/"+p)))
}

// shellScript turns a command (exec probe, container command) into a
// script: `sh -c SCRIPT [ARG0 ARGS...]` runs SCRIPT, anything else is run
// as one simple command.
func shellScript(argv []string) (script string, params []string) {
	if len(argv) >= 3 && (path.Base(argv[0]) == "sh" || path.Base(argv[0]) == "bash" || path.Base(argv[0]) == "ash") && argv[1] == "-c" {
		return argv[2], argv[3:]
	}
	words := make([]string, len(argv))
	for i, w := range argv {
		q, err := syntax.Quote(w, syntax.LangPOSIX)
		if err != nil {
			q = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
		words[i] = q
	}
	return strings.Join(words, " "), nil
}

// runShell runs script in the container rooted at p.root and returns its
// exit status. It blocks until the script ends or ctx is done (then the
// status is 137 and err is ctx's error). A script that does not parse
// exits with status 2, like sh.
func (p *proc) runShell(ctx context.Context, script string, params []string, stdout, stderr io.Writer) (int, error) {
	file, err := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(strings.NewReader(script), "")
	if err != nil {
		fmt.Fprintf(stderr, "sh: %v\n", err)
		return 2, nil
	}
	root := p.fsRoot()
	var env []string
	for k, v := range p.env {
		env = append(env, k+"="+v)
	}
	env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "PWD=/")
	opts := []interp.RunnerOption{
		interp.Env(expand.ListEnviron(env...)),
		interp.Dir("/"),
		interp.StdIO(nil, stdout, stderr),
		interp.ExecHandlers(func(interp.ExecHandlerFunc) interp.ExecHandlerFunc { return p.shellCommand }),
		interp.OpenHandler(func(ctx context.Context, name string, flag int, perm os.FileMode) (io.ReadWriteCloser, error) {
			if name == "/dev/null" {
				return os.OpenFile(os.DevNull, flag, perm)
			}
			f, err := os.OpenFile(containerPath(root, interp.HandlerCtx(ctx).Dir, name), flag, perm)
			var pe *fs.PathError
			if errors.As(err, &pe) {
				pe.Path = name // the container's path, not ours
			}
			return f, err
		}),
		interp.StatHandler(func(ctx context.Context, name string, follow bool) (fs.FileInfo, error) {
			real := containerPath(root, "/", name)
			if follow {
				return os.Stat(real)
			}
			return os.Lstat(real)
		}),
		interp.AccessHandler(func(ctx context.Context, name string, mode interp.AccessMode) error {
			info, err := os.Stat(containerPath(root, "/", name))
			if err != nil {
				return err
			}
			if mode&interp.AccessExec != 0 && !info.IsDir() && info.Mode()&0o111 == 0 {
				return fs.ErrPermission
			}
			return nil
		}),
		interp.ReadDirHandler2(func(ctx context.Context, name string) ([]fs.DirEntry, error) {
			return os.ReadDir(containerPath(root, "/", name))
		}),
	}
	if len(params) > 0 {
		opts = append(opts, interp.Params(append([]string{"--"}, params[1:]...)...))
	}
	r, err := interp.New(opts...)
	if err != nil {
		return 1, err
	}
	err = r.Run(ctx, file)
	if status, ok := interp.IsExitStatus(err); ok {
		return int(status), nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return 137, ctx.Err()
		}
		fmt.Fprintf(stderr, "sh: %v\n", err)
		return 1, nil
	}
	return 0, nil
}

// fsRoot is the container's root directory, made on first use when the
// kubelet gave none (unit tests) and removed when the program exits.
func (p *proc) fsRoot() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.root == "" {
		dir, err := os.MkdirTemp("", "standin-root-")
		if err != nil {
			return os.TempDir() + "/nonexistent-root"
		}
		os.MkdirAll(filepath.Join(dir, "tmp"), 0o755)
		p.root = dir
		p.cleanups = append(p.cleanups, func() { os.RemoveAll(dir) })
	}
	return p.root
}

// builtinNames are run by the interpreter even when named by path.
var builtinNames = map[string]bool{"echo": true, "printf": true, "true": true, "false": true, "test": true, "[": true, "pwd": true, "exit": true}

// shellCommand runs one program of the container's (see the list above).
func (p *proc) shellCommand(ctx context.Context, args []string) error {
	hc := interp.HandlerCtx(ctx)
	root := p.fsRoot()
	name := path.Base(args[0])
	real := func(a string) string { return containerPath(root, hc.Dir, a) }
	failed := false
	fail := func(format string, a ...any) {
		fmt.Fprintf(hc.Stderr, name+": "+format+"\n", a...)
		failed = true
	}
	var flags []string
	operands := args[1:]
	if name != "echo" && name != "printf" {
		for len(operands) > 0 && strings.HasPrefix(operands[0], "-") && operands[0] != "-" {
			if operands[0] == "--" {
				operands = operands[1:]
				break
			}
			flags = append(flags, operands[0])
			operands = operands[1:]
		}
	}
	hasFlag := func(letter string) bool {
		for _, f := range flags {
			if !strings.HasPrefix(f, "--") && strings.Contains(f, letter) {
				return true
			}
		}
		return false
	}
	switch name {
	case "cat":
		if len(operands) == 0 {
			io.Copy(hc.Stdout, hc.Stdin)
		}
		for _, a := range operands {
			f, err := os.Open(real(a))
			if err != nil {
				fail("can't open '%s': No such file or directory", a)
				continue
			}
			io.Copy(hc.Stdout, f)
			f.Close()
		}
	case "touch":
		for _, a := range operands {
			now := time.Now()
			if err := os.Chtimes(real(a), now, now); err != nil {
				f, err := os.OpenFile(real(a), os.O_CREATE|os.O_WRONLY, 0o644)
				if err != nil {
					fail("%s: No such file or directory", a)
					continue
				}
				f.Close()
			}
		}
	case "rm":
		force, recursive := hasFlag("f"), hasFlag("r") || hasFlag("R")
		for _, a := range operands {
			target := real(a)
			info, err := os.Lstat(target)
			switch {
			case err != nil:
				if !force {
					fail("can't remove '%s': No such file or directory", a)
				}
			case info.IsDir() && !recursive:
				fail("'%s' is a directory", a)
			case recursive:
				os.RemoveAll(target)
			default:
				os.Remove(target)
			}
		}
	case "mkdir":
		for _, a := range operands {
			var err error
			if hasFlag("p") {
				err = os.MkdirAll(real(a), 0o755)
			} else {
				err = os.Mkdir(real(a), 0o755)
			}
			if err != nil {
				fail("can't create directory '%s': %v", a, errors.Unwrap(err))
			}
		}
	case "ls":
		if len(operands) == 0 {
			operands = []string{"."}
		}
		for _, a := range operands {
			info, err := os.Stat(real(a))
			if err != nil {
				fail("%s: No such file or directory", a)
				continue
			}
			if !info.IsDir() {
				fmt.Fprintln(hc.Stdout, a)
				continue
			}
			entries, _ := os.ReadDir(real(a))
			var names []string
			for _, e := range entries {
				if !strings.HasPrefix(e.Name(), ".") || hasFlag("a") {
					names = append(names, e.Name())
				}
			}
			sort.Strings(names)
			for _, n := range names {
				fmt.Fprintln(hc.Stdout, n)
			}
		}
	case "sleep":
		var total time.Duration
		for _, a := range operands {
			secs, err := strconv.ParseFloat(strings.TrimSuffix(a, "s"), 64)
			if err != nil || secs < 0 {
				fail("invalid number '%s'", a)
				return interp.NewExitStatus(1)
			}
			total += time.Duration(secs * float64(time.Second))
		}
		t := time.NewTimer(total)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			return interp.NewExitStatus(137)
		}
	case "hostname":
		fmt.Fprintln(hc.Stdout, p.hostname)
	case "env", "printenv":
		var lines []string
		hc.Env.Each(func(name string, vr expand.Variable) bool {
			if vr.Exported {
				lines = append(lines, name+"="+vr.String())
			}
			return true
		})
		sort.Strings(lines)
		for _, l := range lines {
			fmt.Fprintln(hc.Stdout, l)
		}
	default:
		if builtinNames[name] {
			return hc.Builtin(ctx, append([]string{name}, args[1:]...))
		}
		fmt.Fprintf(hc.Stderr, "sh: %s: not found\n", args[0])
		return interp.NewExitStatus(127)
	}
	if failed {
		return interp.NewExitStatus(1)
	}
	return nil
}

// shellOutput runs argv (see shellScript) and returns its combined output
// and exit status; err is set only when ctx ended it.
func (p *proc) shellOutput(ctx context.Context, argv []string) ([]byte, int, error) {
	var out lockedBuffer
	script, params := shellScript(argv)
	code, err := p.runShell(ctx, script, params, &out, &out)
	return out.Bytes(), code, err
}

// lockedBuffer is a bytes.Buffer for stdout and stderr at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Bytes()
}
