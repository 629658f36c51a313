"""One API server: kubeconfig and credentials, REST, watches, upgrades. Rule: knows nothing of forwards."""
