"""Tender: a Kubernetes port-forward manager that lives in the system tray.

The package is layered so that each piece has one job:

* pure logic, no I/O: ``framing`` (the port-forward channel protocol),
  ``targets`` and ``portspec`` (what the user typed), ``selection`` (kubectl's
  pod-selection and port-translation rules), ``backoff`` (reconnect timing),
  ``profiles`` (the YAML profiles file);
* the engine, on its own asyncio loop: ``kubeconfig``, ``kubeapi``,
  ``stream``, ``manager``;
* thin shells over the engine: ``cli`` (headless) and ``ui`` (the tray).
"""

__version__ = "0.1.0"
