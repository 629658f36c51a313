"""One API server: credentials, REST, watches and the port-forward upgrades.

Rule: knows nothing of forwards (import-linter holds it: nothing here imports
the engine or the shells).

* :mod:`~tray.kube.kubeconfig` -- kubeconfig files merged by client-go's rules; credentials.
* :mod:`~tray.kube.kubeapi` -- :class:`KubeAPI`, REST over httpx, errors translated in one place.
* :mod:`~tray.kube.conn` -- :class:`ClusterConn`, one context's API client and namespace.
* :mod:`~tray.kube.watches` -- shared LIST+WATCH caches, degraded polling, staleness.
* :mod:`~tray.kube.health` -- is the API server answering (``GET /version`` after silence).
* :mod:`~tray.kube.websocket` -- the WebSocket upgrade for ``pods/portforward``.
* :mod:`~tray.kube.spdyconn` -- the SPDY upgrade over HTTP/1.1 (kubectl's fallback).
"""
