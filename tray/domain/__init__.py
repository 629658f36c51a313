"""The nouns of port-forwarding and kubectl's rules, on plain data.

Rule: standard library only, no I/O (import-linter holds it).

* :mod:`~tray.domain.targets` -- ``TYPE/NAME`` targets and kubectl's short names.
* :mod:`~tray.domain.portspec` -- ``[LOCAL:]REMOTE`` port specs.
* :mod:`~tray.domain.addresses` -- the local addresses a forward listens on.
* :mod:`~tray.domain.spec` -- :class:`ForwardSpec`, one forward as asked for.
* :mod:`~tray.domain.status` -- :class:`Status`, the five words every shell shows.
* :mod:`~tray.domain.selection` -- kubectl's pod-selection and port-translation rules.
* :mod:`~tray.domain.backoff` -- the reconnect delays (1, 2, 4, 8, 16 s, then 30 s).
"""
