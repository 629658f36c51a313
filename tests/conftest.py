"""Shared fixtures.  Tests marked `cluster` run on the real local test cluster.

One `testcluster up --clusters 2` serves the whole session (set
TENDER_TEST_CLUSTER_DIR to reuse clusters that are already up).  Each test
works in a namespace of its own; a test that stops a component starts it
again before it ends.
"""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import pytest

from tests.clusterlib import Cluster, cluster_down, cluster_up


def pytest_configure(config: pytest.Config) -> None:
    # The one engine per user (tray.api.claim) is found in $XDG_RUNTIME_DIR/tender:
    # the suite gets a runtime dir of its own, so a tray or daemon the developer
    # runs is never joined by a test's `tender forward`, nor a test's by theirs.
    # Short and in /tmp: a unix socket's path has at most 107 bytes.
    os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="tender-rt-", dir="/tmp")
    # A shell that starts the suite in the background (`make test &`, a CI runner) leaves SIGINT ignored,
    # and the commands the tests run inherit that: Ctrl-C (SIGINT) to `tender events` or `tender forward`
    # would then do nothing.  Tests send it as a person at a terminal would, so restore the default.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_unconfigure(config: pytest.Config) -> None:
    import shutil

    run = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.basename(run).startswith("tender-rt-"):
        shutil.rmtree(run, ignore_errors=True)


@pytest.fixture(scope="session")
def _clusters() -> list[Cluster]:
    reuse = os.environ.get("TENDER_TEST_CLUSTER_DIR")
    if reuse:
        yield [Cluster(Path(reuse), "a"), Cluster(Path(reuse), "b")]
        return
    directory = Path(tempfile.mkdtemp(prefix="tender-cluster-"))
    try:
        yield cluster_up(directory, 2)
    finally:
        cluster_down(directory)


@pytest.fixture(scope="session")
def cluster(_clusters: list[Cluster]) -> Cluster:
    return _clusters[0]


@pytest.fixture(scope="session")
def two_clusters(_clusters: list[Cluster]) -> tuple[Cluster, Cluster]:
    return _clusters[0], _clusters[1]


@pytest.fixture
def namespace(cluster: Cluster) -> str:
    ns = cluster.new_namespace()
    yield ns
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
