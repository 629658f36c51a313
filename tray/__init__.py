"""Tender: a Kubernetes port-forward manager that lives in the system tray.

The package is layered; each layer imports only the ones below it, and
``make test`` holds that with import-linter (``[tool.importlinter]`` in
pyproject.toml):

====================  ==========================================================
``tray.cli``          the ``tender`` command (headless shell)
``tray.ui``           the tray app (shell): menu model, view, notifications
``tray.profiles``     the profiles file: model, reader, checker, writer
``tray.engine``       the asyncio data plane and supervision of forwards
``tray.kube``         one API server: kubeconfig, REST, watches, upgrades
``tray.domain``       the nouns and kubectl's rules, on plain data
``tray.wire``         sans-I/O byte formats (SPDY, the v4 channel protocol)
``tray.errors``       the one exception tree, shared by every layer
====================  ==========================================================

Where a newcomer finds things:

* the reconnect logic: :mod:`tray.engine.reconnect` (backoff timing:
  :mod:`tray.domain.backoff`);
* kubectl's pod-selection and port-translation rules: :mod:`tray.domain.selection`;
* the framing: :mod:`tray.wire.spdy` (the SPDY tunnel kubectl uses) and
  :mod:`tray.wire.framing` (``v4.channel.k8s.io``);
* the public API of the engine: :class:`tray.engine.manager.ForwardManager`,
  which takes a :class:`tray.domain.spec.ForwardSpec`;
* the tray's menu, as a pure function of state: :mod:`tray.ui.menu`.

``tray.logs`` (logging setup for the shells) and ``tray.atomicfile``
(atomic file writes) are small helpers outside the layers.
"""

__version__ = "0.1.0"
