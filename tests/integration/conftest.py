"""Fixtures of the engine's integration tests (see tests/conftest.py for the cluster)."""

from __future__ import annotations

import pytest

from collections.abc import Iterator
from pathlib import Path

from tests.clusterlib import Cluster
from tests.integration.daemon import Daemon
from tests.integration.engine import EventLog
from tray.engine.manager import ForwardManager


@pytest.fixture
def manager(cluster: Cluster) -> ForwardManager:
    """An engine on the test kubeconfig (both clusters' contexts); always shut down."""
    m = ForwardManager(cluster.kubeconfig)
    try:
        yield m
    finally:
        m.shutdown()


@pytest.fixture
def events(manager: ForwardManager) -> EventLog:
    log = EventLog()
    manager.subscribe(log)
    return log


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reconnect delays of 0.1-0.5 s instead of 1-16 s (same count: 5 attempts)."""
    import tray.domain.backoff

    monkeypatch.setattr(tray.domain.backoff, "DELAYS", (0.1, 0.2, 0.3, 0.4, 0.5))


@pytest.fixture
def daemon(cluster: Cluster, tmp_path: Path) -> Iterator[Daemon]:
    """``tender daemon`` on the test kubeconfig in a session of its own (tests/integration/daemon.py), started."""
    with Daemon(cluster, tmp_path) as d:
        d.start()
        yield d
