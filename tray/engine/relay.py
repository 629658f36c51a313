"""Relay forwards: UDP, hosts outside the cluster, and Services without pods.

A forward the kubelet's port-forward cannot carry (:func:`tray.domain.relaypod.needs_relay`,
or a Service of type ExternalName or without a selector) runs through a
relay pod: :class:`Relay` checks RBAC, deletes this user's orphaned relays,
creates the pod (:func:`tray.domain.relaypod.relay_pod`), waits for it to
run, holds a ``hold`` connection to it for the forward's life, and deletes
it when the forward stops.  The session port-forwards to the relay pod as
to any pod (its dialer, tunnel, reconnect logic and counters); what this
module adds sits between the local client and that port-forward:

* TCP: each local connection is paired with a port-forward connection
  (over a socketpair: the session's ordinary connection path on one end,
  :meth:`Relay.tcp_shim` on the other), whose first line asks the relay
  for the upstream (:func:`tray.wire.relay.encode_request`).
* UDP: :class:`UdpListener` binds the local port; each local client
  address gets a flow of its own (one port-forward connection, one upstream
  socket in the relay), datagrams framed by length, closed after
  :data:`UDP_IDLE` seconds without traffic.

Where a connection goes is asked per connection (:class:`Upstream`): a fixed
``host``/``ip`` and port, an ExternalName, a ready address of a Service's
EndpointSlices (round robin), or a pod of the original target chosen by
kubectl's rules (UDP to a pod, Deployment, Service...) by its pod IP.
"""

from __future__ import annotations

import asyncio
import getpass
import importlib.resources
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from tray.domain import relaypod
from tray.errors import ForbiddenError, NotFound, TargetError, TenderError, UsageError
from tray.kube.conn import ClusterConn
from tray.engine.relayserver import read_datagrams
from tray.wire.relay import (MAX_DATAGRAM, MAX_LINE, RelayProtocolError, encode_datagram, encode_request,
                             parse_reply)

log = logging.getLogger(__name__)

__all__ = ["Relay", "Upstream", "FixedUpstream", "EndpointSliceUpstream", "PodUpstream", "UdpListener",
           "ENGINE_ID", "UDP_IDLE", "START_TIMEOUT", "relay_source"]

#: This engine's id in its relays' ``kube-tender/engine`` label (random per process).
ENGINE_ID = uuid.uuid4().hex[:12]
#: Seconds a UDP flow (one local client address) lives without a datagram either way.
UDP_IDLE = 60.0
#: Seconds a relay pod may take to run (an image pull on a real cluster).
START_TIMEOUT = 120.0
#: Datagrams a flow queues while its port-forward connection opens; more are dropped (as UDP may).
FLOW_QUEUE = 256
#: UDP flows (local client addresses) one forward keeps at once; the oldest goes first.
MAX_FLOWS = 1024
#: Seconds between two checks that a busy UDP flow's upstream is still the one to use.
RECHECK = 1.0


#: Seconds a relay whose Tender is gone lives on (default :data:`tray.domain.relaypod.EXIT_IDLE`).
EXIT_IDLE_ENV = "TENDER_RELAY_EXIT_IDLE"


def exit_idle_from_env() -> int:
    """``TENDER_RELAY_EXIT_IDLE`` (whole seconds, 1-86400), else the default 60.  Never raises."""
    text = os.environ.get(EXIT_IDLE_ENV, "").strip()
    return int(text) if text.isdigit() and 1 <= int(text) <= 86400 else relaypod.EXIT_IDLE


def process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22), "" where unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def process_alive(pid: int, start: str) -> bool:
    """Whether ``pid`` runs and, where start times are known, is the process that started at ``start``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process by now: not ours any more, unless the start time says otherwise
    now = process_start(pid)
    return not (start and now and now != start)


def relay_source() -> str:
    """The relay program's text, as the pod runs it: :mod:`tray.wire.relay` then :mod:`tray.engine.relayserver`.

    The second file's ``from __future__`` line is dropped (it must open a
    program).  Reads two package files; raises :class:`OSError` if they are missing.
    """
    wire = importlib.resources.files("tray.wire").joinpath("relay.py").read_text(encoding="utf-8")
    server = importlib.resources.files("tray.engine").joinpath("relayserver.py").read_text(encoding="utf-8")
    server = server.replace("from __future__ import annotations\n", "", 1)
    return wire + "\n\n" + server


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no name for this uid (containers)
        return str(os.getuid())


# --------------------------------------------------------------------------- upstreams
class Upstream(Protocol):
    """Where the relay connects for one new connection or flow."""

    async def address(self) -> tuple[str, int]:
        """(host, port) now; raises :class:`~tray.errors.TargetError` when there is none (no ready endpoint)."""
        ...

    def valid(self, address: tuple[str, int]) -> bool:
        """Whether a UDP flow to ``address`` (an earlier :meth:`address`) may go on; returns at once."""
        ...


class FixedUpstream:
    """Always ``host``:``port`` (``host/``, ``ip/``, an ExternalName)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    async def address(self) -> tuple[str, int]:
        return self.host, self.port

    def valid(self, address: tuple[str, int]) -> bool:
        return True

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class EndpointSliceUpstream:
    """The ready addresses of a Service's EndpointSlices (a Service without a selector), in turn.

    ``port``: the Service port's name ("" when unnamed) and ``number`` the
    port to use when a slice names no port (``targetPort``'s number).  The
    slices are listed at most once per :attr:`TTL` seconds.
    """

    TTL = 3.0

    def __init__(self, conn: ClusterConn, namespace: str, service: str, port_name: str, number: int) -> None:
        self._conn, self._ns, self._svc = conn, namespace, service
        self._port_name, self._number = port_name, number
        self._cache: tuple[float, list[tuple[str, int]]] | None = None
        self._turn = 0

    async def addresses(self) -> list[tuple[str, int]]:
        """Every ready (address, port) now.  Awaits one LIST when the cache is older than :attr:`TTL`."""
        now = time.monotonic()
        if self._cache is None or now - self._cache[0] > self.TTL:
            answer = await self._conn.api.get(
                f"/apis/discovery.k8s.io/v1/namespaces/{self._ns}/endpointslices",
                params={"labelSelector": f"kubernetes.io/service-name={self._svc}"})
            found = []
            for item in answer.get("items") or []:
                ports = item.get("ports") or [{}]
                port = next((p.get("port") for p in ports if (p.get("name") or "") == self._port_name),
                            None) or (self._number if ports == [{}] else None)
                if not port:
                    continue
                for ep in item.get("endpoints") or []:
                    if (ep.get("conditions") or {}).get("ready") is False:
                        continue
                    found += [(str(a), int(port)) for a in ep.get("addresses") or []]
            self._cache = (now, sorted(set(found)))
        return self._cache[1]

    async def address(self) -> tuple[str, int]:
        found = await self.addresses()
        if not found:
            raise TargetError(f"service {self._svc} has no ready endpoint address"
                              f"{f' for port {self._port_name}' if self._port_name else ''}")
        self._turn += 1
        return found[(self._turn - 1) % len(found)]

    def valid(self, address: tuple[str, int]) -> bool:
        """Still among the ready addresses last listed (at most :attr:`TTL` s old when flows keep coming)."""
        return self._cache is None or address in self._cache[1]

    def __str__(self) -> str:
        return f"the endpoints of service {self._svc}"


class PodUpstream:
    """A pod of the forward's own target, as kubectl would choose it, by its pod IP (UDP to a pod, a Deployment...).

    ``resolve``: the target's pod tracker's ``resolve`` (pod object, container port).
    """

    def __init__(self, resolve: Callable[[], tuple[dict[str, Any], int]]) -> None:
        self._resolve = resolve
        self._last = ""

    def _now(self) -> tuple[str, int, str]:
        pod, port = self._resolve()
        ip = (pod.get("status") or {}).get("podIP")
        name = pod["metadata"]["name"]
        if not ip:
            raise TargetError(f"pod {name} has no IP yet")
        self._last = f"pod/{name}:{port}"
        return str(ip), int(port), name

    async def address(self) -> tuple[str, int]:
        ip, port, _ = self._now()
        return ip, port

    def valid(self, address: tuple[str, int]) -> bool:
        """The pod kubectl's rules choose now is still the one at ``address`` (a replaced pod is not)."""
        try:
            ip, port, _ = self._now()
        except TenderError:
            return False
        return (ip, port) == address

    def __str__(self) -> str:
        """``pod/web-7c9f-x2k:53``: the pod the last flow went to (``its pods`` before any)."""
        return self._last or "its pods"


# --------------------------------------------------------------------------- the relay pod
class Relay:
    """One forward's relay pod: created by :meth:`create`, held by :meth:`hold`, deleted by :meth:`delete`.

    ``conn``/``namespace``: where the pod lives; ``image``: what it runs;
    ``target``: the forward's target text (labels, annotation); ``upstream``:
    where connections go.  Runs on the engine's loop.
    """

    def __init__(self, conn: ClusterConn, namespace: str, *, image: str, target: str, upstream: Upstream,
                 protocol: str, exit_idle: int | None = None,
                 deadline: int = relaypod.DEFAULT_DEADLINE) -> None:
        self.conn, self.namespace, self.image, self.target = conn, namespace, image, target
        self.upstream, self.protocol = upstream, protocol
        self.exit_idle = exit_idle if exit_idle is not None else exit_idle_from_env()
        self.deadline = deadline
        #: The relay pod's name ("" before :meth:`create`).
        self.pod_name = ""
        #: The forward's pods' cache has shown the pod (so its absence later means it was deleted).
        self.seen = False
        self._hold_task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._user, self._host = _user(), socket.gethostname()

    # ----------------------------------------------------------- lifecycle
    async def check_access(self) -> None:
        """Raise :class:`~tray.errors.ForbiddenError` naming the verbs RBAC refuses (create, delete, list pods).

        One SelfSubjectAccessReview per verb (concurrently).  If the review
        itself cannot be asked, the creation will tell.
        """
        async def allowed(verb: str) -> bool:
            review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                      "spec": {"resourceAttributes": {"namespace": self.namespace, "verb": verb,
                                                      "resource": "pods"}}}
            try:
                answer = await self.conn.api.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                                                  review)
            except TenderError:
                return True
            return bool((answer.get("status") or {}).get("allowed"))

        verbs = ("create", "delete", "list")
        answers = await asyncio.gather(*(allowed(v) for v in verbs))
        missing = [v for v, ok in zip(verbs, answers) if not ok]
        if missing:
            raise ForbiddenError(
                f"a relay forward needs to {', '.join(missing)} pods in namespace {self.namespace}, and RBAC "
                f"does not allow {'it' if len(missing) == 1 else 'them'} (kubectl auth can-i "
                f"{missing[0]} pods -n {self.namespace}); nothing was created")

    async def delete_orphans(self) -> list[str]:
        """Delete this user's relay pods on this machine (in this namespace) whose Tender is gone; their names.

        Awaits a LIST and the deletions; never raises (a refusal is logged).
        """
        path = f"/api/v1/namespaces/{self.namespace}/pods"
        try:
            answer = await self.conn.api.get(path, params={
                "labelSelector": relaypod.owner_selector(self._user, self._host)})
        except TenderError as exc:
            log.info("relay: cannot list old relays in %s: %s", self.namespace, exc)
            return []
        names = relaypod.orphans(answer.get("items") or [], ENGINE_ID, process_alive)
        await asyncio.gather(*(self._delete(name) for name in names))
        for name in names:
            log.info("relay: deleted orphaned relay pod %s/%s", self.namespace, name)
        return names

    async def create(self, on_progress: Callable[[str], None] | None = None) -> str:
        """Check RBAC, delete orphans, create the relay pod and wait until its container runs.

        Returns the pod's name.  Awaits up to :data:`START_TIMEOUT` seconds
        (an image pull); raises :class:`~tray.errors.ForbiddenError` (RBAC),
        :class:`~tray.errors.TargetError` (the pod could not start: the
        reason, say ``ErrImagePull``; the pod is deleted), or the API's errors.
        """
        await self.check_access()
        await self.delete_orphans()
        manifest = relaypod.relay_pod(
            source=relay_source(), image=self.image, target=self.target, deadline=self.deadline,
            exit_idle=self.exit_idle, process=(os.getpid(), process_start(os.getpid())),
            labels=relaypod.relay_labels(self._user, self._host, ENGINE_ID, self.target))
        created = await self.conn.api.post(f"/api/v1/namespaces/{self.namespace}/pods", manifest)
        self.pod_name = created["metadata"]["name"]
        log.info("relay: created pod %s/%s (%s) for %s", self.namespace, self.pod_name, self.image, self.target)
        if on_progress:
            on_progress(f"starting relay pod {self.pod_name}")
        try:
            await self._wait_running()
        except BaseException:
            await self.delete()
            raise
        return self.pod_name

    async def _wait_running(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        path = f"/api/v1/namespaces/{self.namespace}/pods/{self.pod_name}"
        while True:
            pod = await self.conn.api.get(path)
            status = pod.get("status") or {}
            phase = status.get("phase")
            states = [cs.get("state") or {} for cs in status.get("containerStatuses") or []]
            if phase == "Running" and states and "running" in states[0]:
                return
            why = ""
            for state in states:
                waiting = state.get("waiting") or {}
                if waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName",
                                             "CreateContainerConfigError", "CreateContainerError"):
                    why = f"{waiting['reason']}: {waiting.get('message', '')}".strip(": ")
                term = state.get("terminated") or {}
                if term:
                    why = f"exited {term.get('exitCode')} ({term.get('reason', '')})"
            if phase in ("Failed", "Succeeded") and not why:
                why = status.get("reason") or phase
            if why:
                raise TargetError(f"relay pod {self.pod_name} (image {self.image}) could not start: {why}")
            if time.monotonic() > deadline:
                raise TargetError(f"relay pod {self.pod_name} did not start in {START_TIMEOUT:.0f} s "
                                  f"(image {self.image}; phase {phase or 'unknown'})")
            await asyncio.sleep(0.2)

    async def delete(self) -> None:
        """Stop holding and delete the relay pod (grace 0); never raises.  Awaits one API call."""
        if self._hold_task is not None:
            self._hold_task.cancel()
            self._hold_task = None
        name, self.pod_name = self.pod_name, ""
        if name:
            await self._delete(name)
            log.info("relay: deleted pod %s/%s", self.namespace, name)

    async def _delete(self, name: str) -> None:
        try:
            await self.conn.api.delete(f"/api/v1/namespaces/{self.namespace}/pods/{name}",
                                       {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0})
        except NotFound:
            pass
        except TenderError as exc:
            log.warning("relay: could not delete pod %s/%s: %s", self.namespace, name, exc)

    def hold(self, open_link: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[Any]]) -> None:
        """Keep a ``hold`` connection open to the relay while the forward runs (reopened when it ends).

        ``open_link(reader, writer)``: carry one connection to the relay's
        port (a port-forward connection that reports nothing).  Returns at
        once; :meth:`wait_listening` tells when the relay first answered.
        """
        if self._hold_task is None:
            self._listening = asyncio.Event()
            self._hold_task = asyncio.get_running_loop().create_task(self._hold(open_link),
                                                                     name=f"relay hold {self.pod_name}")

    async def wait_listening(self, timeout: float = 15.0) -> None:
        """Await the relay's first ``ok`` (its program listens a moment after the container starts).

        Raises :class:`~tray.errors.TargetError` after ``timeout`` seconds.
        """
        try:
            await asyncio.wait_for(self._listening.wait(), timeout)
        except asyncio.TimeoutError:
            raise TargetError(f"relay pod {self.pod_name} does not answer on port {relaypod.RELAY_PORT} after "
                              f"{timeout:.0f} s (kubectl logs -n {self.namespace} {self.pod_name})") from None

    async def _hold(self, open_link: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[Any]]) -> None:
        while True:
            ours, theirs = socket.socketpair()
            reader, writer = await asyncio.open_connection(sock=ours)
            link_reader, link_writer = await asyncio.open_connection(sock=theirs)
            link = asyncio.ensure_future(open_link(link_reader, link_writer))
            try:
                writer.write(encode_request("hold"))
                if await reader.readline() == b"ok\n":
                    self._listening.set()
                    await reader.read()  # nothing more until the connection ends
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()
                link.cancel()
            await asyncio.sleep(1.0 if self._listening.is_set() else 0.2)

    # ----------------------------------------------------------- connections
    async def tcp_shim(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter,
                       relay_r: asyncio.StreamReader, relay_w: asyncio.StreamWriter) -> str:
        """Carry one local TCP connection over a port-forward connection to the relay (``relay_r``/``relay_w``).

        Asks the relay for the upstream, passes the client's bytes at once
        and the upstream's once the relay says ``ok``.  Returns "" when the
        connection ran, else why it could not (the relay's error, no
        endpoint); closes both writers.  Awaits the whole connection.
        """
        try:
            try:
                host, port = await self.upstream.address()
            except TenderError as exc:
                return str(exc)
            relay_w.write(encode_request("tcp", host, port))
            up = asyncio.ensure_future(_copy(client_r, relay_w))
            try:
                line = await relay_r.readline()
                error = parse_reply(line[:MAX_LINE])
            except (RelayProtocolError, ConnectionError, OSError, ValueError) as exc:
                up.cancel()
                return f"relay: {exc}"
            if error is not None:
                up.cancel()
                return error
            await asyncio.gather(up, _copy(relay_r, client_w))
            return ""
        finally:
            client_w.close()
            relay_w.close()


async def _copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await src.read(65536)
            if not data:
                if dst.can_write_eof() and not dst.is_closing():
                    dst.write_eof()
                return
            dst.write(data)
            await dst.drain()
    except (ConnectionError, OSError):
        dst.close()


# --------------------------------------------------------------------------- UDP
class _Flow:
    """One local client address: its port-forward connection to the relay and its queue."""

    def __init__(self) -> None:
        self.queue: list[bytes] = []
        self.writer: asyncio.StreamWriter | None = None
        self.last = time.monotonic()
        self.task: asyncio.Task[None] | None = None
        #: Where the relay sends it (None until asked), and when that was last checked.
        self.address: tuple[str, int] | None = None
        self.checked = time.monotonic()


class UdpListener(asyncio.DatagramProtocol):
    """The local UDP port of a relay forward: a flow per client address (see the module docstring).

    ``open_flow(client, reader, writer)``: carry one flow's port-forward
    connection (the session's connection path); ``upstream()``: where flows
    go (None while the relay is not up: the flow fails); ``on_error(text)``: a flow that could not start.  Close it with
    :meth:`close` (also what the session's listener list calls).
    """

    def __init__(self, upstream: Callable[[], Upstream | None],
                 open_flow: Callable[[str, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[Any]],
                 on_error: Callable[[str], None], idle: float = UDP_IDLE) -> None:
        self.upstream, self._open_flow, self._on_error, self.idle = upstream, open_flow, on_error, idle
        self.transport: asyncio.DatagramTransport | None = None
        self.flows: dict[Any, _Flow] = {}
        self._closed = False

    @property
    def sockets(self) -> list[socket.socket]:
        """The bound socket (as ``Server.sockets``)."""
        sock = self.transport.get_extra_info("socket") if self.transport else None
        return [sock] if sock is not None else []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        flow = self.flows.get(addr)
        now = time.monotonic()
        if flow is not None and flow.address is not None and now - flow.checked >= RECHECK:
            # A flow keeps its upstream socket while the client keeps sending: when the pod
            # behind it is replaced, end it so this datagram starts one to the new pod.
            flow.checked = now
            upstream = self.upstream()
            if upstream is None or not upstream.valid(flow.address):
                self._end(addr)
                flow = None
        if flow is None:
            if len(self.flows) >= MAX_FLOWS:
                oldest = min(self.flows, key=lambda a: self.flows[a].last)
                self._end(oldest)
            flow = self.flows[addr] = _Flow()
            flow.task = asyncio.get_running_loop().create_task(self._run(addr, flow), name=f"udp flow {addr}")
        flow.last = time.monotonic()
        if flow.writer is not None and not flow.writer.is_closing():
            flow.writer.write(encode_datagram(data[:MAX_DATAGRAM]))
        elif len(flow.queue) < FLOW_QUEUE:
            flow.queue.append(data[:MAX_DATAGRAM])

    def error_received(self, exc: Exception) -> None:
        pass

    def _end(self, addr: Any) -> None:
        flow = self.flows.pop(addr, None)
        if flow is not None and flow.task is not None:
            flow.task.cancel()

    async def _run(self, addr: Any, flow: _Flow) -> None:
        ours, theirs = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=ours)
        link_reader, link_writer = await asyncio.open_connection(sock=theirs)
        client = str(addr[0])
        link = asyncio.ensure_future(self._open_flow(client, link_reader, link_writer))
        try:
            upstream = self.upstream()
            if upstream is None:
                self._on_error("the relay pod is not running")
                return
            try:
                host, port = await upstream.address()
            except TenderError as exc:
                self._on_error(str(exc))
                return
            flow.address = (host, port)
            writer.write(encode_request("udp", host, port))
            try:
                error = parse_reply((await reader.readline())[:MAX_LINE])
            except (RelayProtocolError, ConnectionError, OSError, ValueError) as exc:
                error = f"relay: {exc}"
            if error is not None:
                self._on_error(error)
                return
            flow.writer = writer
            for datagram in flow.queue:
                writer.write(encode_datagram(datagram))
            flow.queue.clear()

            def touch() -> None:
                flow.last = time.monotonic()

            def deliver(datagram: bytes) -> None:
                if self.transport is not None and not self.transport.is_closing():
                    self.transport.sendto(datagram, addr)

            await read_datagrams(reader, self.idle, lambda: flow.last, touch, deliver)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            if self.flows.get(addr) is flow:
                del self.flows[addr]
            try:
                await asyncio.wait_for(link, 2.0)
            except (asyncio.TimeoutError, asyncio.CancelledError, Exception):
                link.cancel()

    def close(self) -> None:
        """Stop listening and end every flow."""
        self._closed = True
        for addr in list(self.flows):
            self._end(addr)
        if self.transport is not None:
            self.transport.close()

    async def wait_closed(self) -> None:
        """As ``Server.wait_closed`` (nothing to wait for)."""


async def listen_udp(listener: UdpListener, host: str, port: int) -> UdpListener:
    """Bind ``listener`` on ``host``:``port`` (0: any free port); returns it.  Raises :class:`OSError`."""
    await asyncio.get_running_loop().create_datagram_endpoint(lambda: listener, local_addr=(host, port))
    return listener

