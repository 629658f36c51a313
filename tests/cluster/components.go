package main

// Components of the control plane, each run in its own process by the
// orchestrator (see orchestrator.go) as `testcluster component NAME ARGS...`.
// They are the upstream Kubernetes and etcd programs, linked into this one
// binary so that the slow link step happens once instead of five times.

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/cli"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func runComponent(name string, args []string) int {
	switch name {
	case "apiserver":
		cmd := apiserver.NewAPIServerCommand()
		cmd.SetArgs(args)
		return cli.Run(cmd)
	case "controller-manager":
		cmd := controllermanager.NewControllerManagerCommand()
		cmd.SetArgs(args)
		return cli.Run(cmd)
	case "scheduler":
		cmd := scheduler.NewSchedulerCommand()
		cmd.SetArgs(args)
		return cli.Run(cmd)
	case "etcd":
		return runEtcd(args)
	case "kubelet":
		return runKubelet(args)
	}
	fmt.Fprintf(os.Stderr, "unknown component %q\n", name)
	return 2
}

// runEtcd runs a single-member etcd with the embed package.
// args: DATA_DIR CLIENT_URL PEER_URL
func runEtcd(args []string) int {
	if len(args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: component etcd DATA_DIR CLIENT_URL PEER_URL")
		return 2
	}
	cfg := embed.NewConfig()
	cfg.Name = "default"
	cfg.Dir = args[0]
	cfg.LogLevel = "warn"
	cfg.ListenClientUrls = mustURLs(args[1])
	cfg.AdvertiseClientUrls = mustURLs(args[1])
	cfg.ListenPeerUrls = mustURLs(args[2])
	cfg.AdvertisePeerUrls = mustURLs(args[2])
	cfg.InitialCluster = cfg.Name + "=" + args[2]
	// A test cluster does not need fsync on every write; it makes the
	// cluster several times faster on a small disk.
	cfg.UnsafeNoFsync = true
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd:", err)
		return 1
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		fmt.Fprintln(os.Stderr, "etcd: not ready after 60s")
		return 1
	}
	fmt.Fprintln(os.Stderr, "etcd ready on", args[1])
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	select {
	case <-ctx.Done():
	case err := <-e.Err():
		fmt.Fprintln(os.Stderr, "etcd:", err)
		return 1
	}
	return 0
}

func mustURLs(s string) []url.URL {
	u, err := url.Parse(s)
	must(err)
	return []url.URL{*u}
}
