package main

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func clusterEntry(st *clusterState) *clientcmdapi.Cluster {
	ca, err := os.ReadFile(st.CAFile)
	must(err)
	return &clientcmdapi.Cluster{Server: fmt.Sprintf("https://127.0.0.1:%d", st.APIPort), CertificateAuthorityData: ca}
}

// writeKubeconfig writes DIR/kubeconfig: per cluster an admin context
// (tender-a) and a viewer context (tender-a-viewer) that may not forward.
func writeKubeconfig(dir string, states []*clusterState) {
	cfg := clientcmdapi.NewConfig()
	for _, st := range states {
		cfg.Clusters[st.Name] = clusterEntry(st)
		cfg.AuthInfos[st.Name+"-admin"] = &clientcmdapi.AuthInfo{Token: st.AdminToken}
		cfg.AuthInfos[st.Name+"-viewer"] = &clientcmdapi.AuthInfo{Token: st.ViewerToken}
		cfg.Contexts[st.Name] = &clientcmdapi.Context{Cluster: st.Name, AuthInfo: st.Name + "-admin", Namespace: "default"}
		cfg.Contexts[st.Name+"-viewer"] = &clientcmdapi.Context{Cluster: st.Name, AuthInfo: st.Name + "-viewer", Namespace: "default"}
		pki := filepath.Dir(st.CAFile)
		cfg.AuthInfos[st.Name+"-cert"] = &clientcmdapi.AuthInfo{
			ClientCertificate: filepath.Join(pki, "admin-client.crt"), ClientKey: filepath.Join(pki, "admin-client.key")}
		cfg.Contexts[st.Name+"-cert"] = &clientcmdapi.Context{Cluster: st.Name, AuthInfo: st.Name + "-cert", Namespace: "default"}
	}
	cfg.CurrentContext = states[0].Name
	must(clientcmd.WriteToFile(*cfg, filepath.Join(dir, "kubeconfig")))
}

// writeComponentKubeconfig is what the controller-manager, scheduler and
// test kubelet use to reach their apiserver.
func writeComponentKubeconfig(path string, st *clusterState) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = clusterEntry(st)
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: st.AdminToken}
	cfg.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: "admin"}
	cfg.CurrentContext = "local"
	must(clientcmd.WriteToFile(*cfg, path))
}
