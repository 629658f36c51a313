// Command testcluster runs real local Kubernetes clusters for Tender's tests
// and demo: etcd, kube-apiserver, kube-controller-manager and kube-scheduler
// from the upstream modules, plus a test kubelet (kubelet.go) that runs
// in-process stand-ins for the agnhost e2e test programs.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	switch os.Args[1] {
	case "component":
		if len(os.Args) < 3 {
			usage()
			os.Exit(2)
		}
		os.Exit(runComponent(os.Args[2], os.Args[3:]))
	default:
		os.Exit(runOrchestrator(os.Args[1], os.Args[2:]))
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage:
  testcluster up --dir DIR [--clusters N] [--nodes M] [--streaming-connection-idle-timeout 4h0m0s]
  testcluster down --dir DIR
  testcluster stop|start --dir DIR --cluster a --component apiserver|kubelet|etcd|controller-manager|scheduler
  testcluster status --dir DIR`)
}
