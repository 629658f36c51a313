"""The asyncio data plane and supervision of forwards, on one engine thread.

Rule: knows nothing of the tray, the CLI or the profiles file (import-linter
holds it).  Shells talk to :class:`~tray.engine.manager.ForwardManager` only.

* :mod:`~tray.engine.manager` -- the public, thread-safe API and its events.
* :mod:`~tray.engine.session` -- one forward: its listener and status (the façade).
* :mod:`~tray.engine.podtracker` -- which pod a forward uses, from the watches.
* :mod:`~tray.engine.reconnect` -- the reconnect logic: backoff, probes, recovery.
* :mod:`~tray.engine.dialer` -- which port-forward path, which connection.
* :mod:`~tray.engine.tunnel` -- the SPDY session to a pod (kubectl's path);
  :mod:`~tray.engine.kubeletqueues` models the kubelet's frame workers for it.
* :mod:`~tray.engine.v4` and :mod:`~tray.engine.pool` -- the ``v4.channel.k8s.io``
  link and its spare streams.
* :mod:`~tray.engine.browse` -- namespaces, resources and ports for menus.
"""
