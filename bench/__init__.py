"""Tender's benchmark suite: Tender vs ``kubectl port-forward`` (WebSocket and SPDY)
vs the pod server's own address, on the project's real local test cluster.

Run ``python -m bench [--quick] [--out PATH]`` (``make bench``, ``make bench-quick``).
See ``bench/README.md`` for the scenarios, the method and how to read the results.
"""
