"""How a forward reaches its pod: which port-forward protocol, which connection.

Three paths lead through the API server to the kubelet, all carrying the
same SPDY session (:mod:`tray.engine.tunnel`: one per pod, every connection
on it) but the last:

* SPDY straight over an HTTP/1.1 upgrade (``POST``, :mod:`tray.kube.spdyconn`):
  kubectl's path before 1.31 and its fallback since.  Tender prefers it:
  the API server only copies bytes between the client and the kubelet,
  where on the WebSocket path it also unwraps and wraps every message.
  Measured on the benchmark's clusters (bench/README.md, "Which path Tender takes"),
  a download costs Tender about a fifth less CPU per GB this way and the
  API server about a third less, so forwards move more per core on both
  ends.  It needs ``create pods/portforward``, which every kubectl has
  needed.
* the same session tunnelled in a WebSocket (``GET`` with subprotocol
  ``SPDY/3.1+portforward.k8s.io``): kubectl's default since Kubernetes
  1.31, made for proxies and load balancers in front of the API server
  that pass WebSockets but not SPDY.  Tender uses it when the upgrade
  fails (refused, or left unanswered on a connection that was made) for
  any reason but a missing pod, bad credentials, an unreachable
  cluster or a 5xx (the kubelet unreachable: a moment's trouble, not a
  protocol matter): a proxy that refuses the upgrade, or credentials that
  may ``get`` but not ``create`` (an API server before 1.30 authorizes the
  WebSocket, a GET, as ``get``).
* ``v4.channel.k8s.io`` (:mod:`tray.engine.v4`): one WebSocket per connection,
  with spare streams kept warm while the forward is busy (:mod:`tray.engine.pool`).
  Every API server since 1.4 speaks it.  Tried when the tunnel fails too
  (an API server without the tunnel refuses its subprotocol in several
  ways: no subprotocol chosen, a 400, the kubelet's 403 "unable to
  negotiate protocol"; rather than read those, v4 is tried): if v4 works,
  the forward uses v4 from then on; if it fails too, its error is the one
  to show, but for a 403 after the upgrade's own 403: then the upgrade's,
  naming ``create`` (what kubectl needs), is the one shown.

Whichever path worked is kept for the forward's later tunnels, so the
fallback costs one failed dial per forward, at its first connection.

``TENDER_PORT_FORWARD`` forces a path, as ``KUBECTL_PORT_FORWARD_WEBSOCKETS``
does for kubectl: ``spdy`` (the POST upgrade only), ``tunnel`` (the
WebSocket tunnel only), ``v4``; anything else is ``auto``, the order above.

Connections are made on demand, and let go when idle (kftui's "idle
disconnect"): a forward dials its pod at its first local connection, not
when it starts, and a tunnel that has carried no connection for
``idle_close`` seconds (``TENDER_TUNNEL_IDLE``, default
:data:`~tray.engine.tunnel.IDLE_CLOSE`, 60 s) closes; the next connection
dials again (a cold connection costs one dial, tens of milliseconds on a
near API server).  So forwards that are not used hold nothing open on the
API server or the kubelet, however many there are: a thousand listening
forwards cost a thousand listening sockets and the shared watches, no
tunnel.  The spare v4 streams follow the same rule (:mod:`tray.engine.pool`:
kept only while the forward is busy).  A probe after a drop
(:meth:`Dialer.check`) opens a tunnel that the same idle rule closes.

The session sees only ``connect(pod, port)``, which returns a :class:`Link`
to pump one local connection through, and the failure hooks.  A
:class:`Dialer` leads to one pod at a time; a forward whose connections go
to several pods at once (a Service's ``balance: round-robin``) holds a
:class:`PodDialers`: a :class:`Dialer` per pod in its rotation, each with
its own tunnel, as client-go holds one port-forward connection per pod.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import Protocol

from websockets.asyncio.client import ClientConnection

from tray.errors import ClusterUnreachable, ForbiddenError, TenderError
from tray.kube.kubeapi import ApiError, KubeAPI, NotFound, Unauthorized
from tray.kube.websocket import close_ws, forget_traceback
from tray.engine.pool import StreamPool
from tray.engine.v4 import StreamResult, Traffic, open_stream, pump
from tray.engine.tunnel import IDLE_CLOSE, Tunnel

log = logging.getLogger(__name__)

__all__ = ["Dialer", "PodDialers", "Link", "PROTOCOL_ENV", "protocol_from_env", "IDLE_ENV",
           "idle_close_from_env"]

PROTOCOL_ENV = "TENDER_PORT_FORWARD"
_PROTOCOLS = ("auto", "tunnel", "spdy", "v4")
#: Seconds a tunnel without connections stays open before it closes (a number > 0).
IDLE_ENV = "TENDER_TUNNEL_IDLE"


def protocol_from_env() -> str:
    """``TENDER_PORT_FORWARD`` (case and spaces ignored): auto, tunnel, spdy or v4; auto if unset or unknown.

    Reads the environment only; never raises.
    """
    value = os.environ.get(PROTOCOL_ENV, "auto").strip().lower() or "auto"
    return value if value in _PROTOCOLS else "auto"


def idle_close_from_env() -> float:
    """``TENDER_TUNNEL_IDLE``: seconds an idle tunnel stays open; :data:`~tray.engine.tunnel.IDLE_CLOSE` (60) if unset.

    Anything but a finite number above 0 (``"0"``, ``"off"``, ``"inf"``) is
    the default too.  Reads the environment only; never raises.
    """
    try:
        value = float(os.environ.get(IDLE_ENV, "").strip())
    except ValueError:
        return IDLE_CLOSE
    return value if 0 < value < 1e9 else IDLE_CLOSE


class Link(Protocol):
    """One local connection's way to the pod (a v4 stream, or a place on a tunnel)."""

    async def pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   traffic: Traffic | None = None) -> StreamResult:
        """Carry the local connection (``reader``/``writer``) until both sides are done, then close ``writer``.

        ``traffic``: the forward's counters (:class:`~tray.engine.v4.Traffic`),
        added to as bytes pass each way (None: not counted).

        Awaits the whole connection (as long as the client and the pod keep
        it open).  Returns how it ended (:class:`~tray.engine.v4.StreamResult`:
        bytes each way, the kubelet's error text, whether it was dropped);
        never raises for I/O errors.  Use a link once.
        """
        ...


class _V4Link:
    def __init__(self, ws: ClientConnection, port: int) -> None:
        self._ws, self._port = ws, port

    async def pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   traffic: Traffic | None = None) -> StreamResult:
        return await pump(reader, writer, self._ws, self._port, traffic)


class _TunnelLink:
    def __init__(self, dialer: Dialer, tunnel: Tunnel, pod: str, port: int) -> None:
        self._dialer, self._tunnel, self._pod, self._port = dialer, tunnel, pod, port

    async def pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   traffic: Traffic | None = None) -> StreamResult:
        result = await self._tunnel.forward(reader, writer, self._port, traffic=traffic)
        if result.replay is None:
            return result
        # The tunnel was dead before the kubelet saw this connection (see
        # tray.engine.tunnel): once more on a fresh one, with what it had sent.
        sent_before = result.bytes_up
        try:
            fresh = await self._dialer.replace_tunnel(self._tunnel, self._pod, self._port)
        except TenderError as exc:
            log.info("connection to %s could not start again: %s", self._pod, exc)
            fresh = None
        if fresh is not None:
            result = await fresh.forward(reader, writer, self._port, replay=result.replay,
                                         replay_eof=result.replay_eof, traffic=traffic)
            result.bytes_up += sent_before
        if result.replay is not None or fresh is None:  # failed twice: a drop after all
            result.replay, result.dropped = None, True
            writer.close()
        return result


class Dialer:
    """One session's connections to its current pod.  Runs on the engine's loop.

    Holds the pod's tunnel (opened once however many connections wait for
    it), the tunnels it retired that still carry connections, and the v4
    spare streams (:class:`~tray.engine.pool.StreamPool`).  Dials take at
    most ``OPEN_TIMEOUT`` (15 s) each, twice when a 401 reloads the
    kubeconfig; the fallback from the tunnel tries the other paths in turn,
    so a first :meth:`connect` may take a few dials.
    """

    def __init__(self, api: KubeAPI, namespace: str, *, protocol: str | None = None,
                 idle_close: float | None = None) -> None:
        """``api``: the context's client; ``namespace``: the pods'; ``protocol``: auto, tunnel, spdy or v4.

        ``protocol`` None reads :data:`PROTOCOL_ENV` (:func:`protocol_from_env`).
        ``idle_close``: seconds a tunnel without connections stays open (None
        reads :data:`IDLE_ENV`, :func:`idle_close_from_env`).
        Opens nothing until the first :meth:`connect` or :meth:`check`.
        """
        self._api, self._namespace = api, namespace
        self.protocol = protocol or protocol_from_env()
        self.idle_close = idle_close_from_env() if idle_close is None else idle_close
        self._pool = StreamPool(lambda pod, port: open_stream(api, namespace, pod, port))
        self._tunnel: Tunnel | None = None
        self._opening: tuple[str, asyncio.Future[Tunnel | None]] | None = None
        self._retired: set[Tunnel] = set()
        self._generation = 0  # bumped by close(): a tunnel opened for an older one is dropped

    @property
    def idle(self) -> bool:
        """No tunnel of it is alive: none current, none being opened, no retired one still carrying connections."""
        return self.tunnels == 0 and self._opening is None

    @property
    def tunnels(self) -> int:
        """Tunnels of this dialer open now: the current one (unless it ended, say idle) and retired ones
        still carrying connections.  Never blocks."""
        self._retired = {t for t in self._retired if t.closed_reason is None}
        current = self._tunnel is not None and self._tunnel.closed_reason is None
        return int(current) + len(self._retired)

    @property
    def uses_tunnel(self) -> bool:
        """Whether new connections go through a SPDY tunnel (WebSocket or POST upgrade), not v4.

        Changes to False once the fallback found that only v4 works.
        """
        return self.protocol != "v4"

    async def connect(self, pod: str, port: int) -> Link:
        """A way to ``pod``'s ``port`` (a container port) for one new connection.

        Awaits the tunnel (opened now if there is none, or the one there
        failed a liveness PING: up to ``REPLY_TIMEOUT`` 10 s for the PING) or
        a v4 stream (a spare at once, else a dial).  Raises the errors of
        :mod:`tray.errors`: :class:`~tray.errors.ForbiddenError`,
        :class:`~tray.errors.Unauthorized`, :class:`~tray.errors.NotFound`
        (the pod is gone), :class:`~tray.errors.ClusterUnreachable`, another
        :class:`~tray.errors.TenderError` for the kubelet's own failures.
        """
        if self.uses_tunnel:
            tunnel = await self._tunnel_to(pod, port)
            if tunnel is not None and not await tunnel.answers():
                # Silent for a while and no answer to a PING now: dead
                # without knowing it (the kubelet went away, or the network).
                # A fresh tunnel, before this connection sends anything.
                tunnel = await self._tunnel_to(pod, port)
            if tunnel is not None:
                return _TunnelLink(self, tunnel, pod, port)
        ws = self._pool.take(pod, port) or await open_stream(self._api, self._namespace, pod, port)
        return _V4Link(ws, port)

    async def check(self, pod: str, port: int) -> None:
        """Prove the path to the pod works now (after a drop): raises if not.

        On the tunnel path this opens a fresh tunnel (the old one may be dead
        without knowing it) that the next connections then use; on v4 one
        stream is opened and closed.  Awaits the dial (see the class); raises
        what :meth:`connect` raises.
        """
        if self.uses_tunnel:
            self._retire_current()
            if await self._tunnel_to(pod, port) is not None:
                return
        await self._open_and_close_v4(pod, port)

    async def _open_and_close_v4(self, pod: str, port: int) -> None:
        """One v4 stream opened and closed: the path works, or its precise error is raised."""
        ws = await open_stream(self._api, self._namespace, pod, port)
        await close_ws(ws)
        forget_traceback(ws)

    async def replace_tunnel(self, dead: Tunnel, pod: str, port: int) -> Tunnel | None:
        """A working tunnel instead of ``dead`` (one replacement however many connections ask).

        None on the v4 path, or when the fallback found that only v4 works.
        Awaits the dial; raises what :meth:`connect` raises.
        """
        if self._tunnel is dead:
            self._retire_current()
        return await self._tunnel_to(pod, port) if self.uses_tunnel else None

    def connection_failed(self, *, dropped: bool, pod: str = "") -> None:
        """A connection ended in an error or a drop: do not reuse what may be broken.

        Spare v4 streams share the failed path and may be cut without knowing
        it yet.  A tunnel is only abandoned on a drop: an error on one stream
        (connection refused inside the pod) says nothing about the tunnel,
        which is PINGed instead.  ``dropped``: the connection was cut, rather
        than refused by the pod; ``pod``: its pod (one Dialer has one pod at
        a time, so it is not needed here).  Never blocks; never raises.
        """
        self._pool.flush()
        if dropped:
            self._retire_current()
        elif self._tunnel is not None:
            # The kubelet's error may come from a path that is going away
            # (drop-connections cuts the pod's side and the session at once,
            # and the API server keeps our WebSocket until we next write).
            self._tunnel.suspect()

    def pod_changed(self) -> None:
        """New connections go to another pod: old spares close and the tunnel retires.

        Open connections on the retired tunnel finish.  Never blocks; never raises.
        """
        self._pool.flush()
        self._retire_current()

    def retain(self, pods: Mapping[str, str | None]) -> None:
        """New connections go only to ``pods`` (names to uids): retire the tunnel if its pod is not one of them.

        Never blocks; never raises.
        """
        if self._tunnel is not None and self._tunnel.pod not in pods:
            self.pod_changed()

    def close(self) -> None:
        """Drop everything (the forward stopped or failed); Retry may use the dialer again.

        Connections still open on its tunnels are cut (dropped); a tunnel
        being opened is abandoned.  Never blocks (the closes run in the
        background); never raises.
        """
        self._generation += 1
        self._pool.close()
        self._retire_current()
        if self._opening is not None:
            self._opening[1].cancel()
            self._opening = None
        for tunnel in list(self._retired):
            tunnel.abort("forward stopped")
        self._retired.clear()

    # ------------------------------------------------------------ tunnels
    def _retire_current(self) -> None:
        tunnel, self._tunnel = self._tunnel, None
        if tunnel is not None:
            tunnel.retire()
            if tunnel.closed_reason is None:
                self._retired.add(tunnel)
        self._retired = {t for t in self._retired if t.closed_reason is None}

    async def _tunnel_to(self, pod: str, port: int) -> Tunnel | None:
        """The pod's tunnel, opened once however many connections wait for it."""
        if self._retired:  # let go of retired tunnels that have ended (they hold ~0.4 MB each)
            self._retired = {t for t in self._retired if t.closed_reason is None}
        current = self._tunnel
        if current is not None:
            # Credentials reloaded since it opened (the kubeconfig changed):
            # new connections use what the kubeconfig says now, as on v4.
            if current.pod == pod and current.usable and current.auth_generation == self._api.auth.generation:
                return current
            self._retire_current()
        if self._opening is None or self._opening[0] != pod:
            self._opening = (pod, asyncio.ensure_future(self._open_tunnel(pod, port)))
        opening = self._opening[1]
        try:
            return await asyncio.shield(opening)
        finally:
            if self._opening is not None and self._opening[1] is opening and opening.done():
                self._opening = None

    async def _open_tunnel(self, pod: str, port: int) -> Tunnel | None:
        generation = self._generation
        try:
            tunnel = await Tunnel.open(self._api, self._namespace, pod, upgrade=self.protocol in ("auto", "spdy"),
                                       idle_close=self.idle_close)
        except (NotFound, Unauthorized, ClusterUnreachable):
            raise  # the same on every path
        except TenderError as exc:
            if self.protocol in ("tunnel", "spdy") or _kubelet_trouble(exc):
                raise  # forced, or the API server cannot reach the kubelet now: not a protocol matter
            tunnel = await self._fall_back(pod, port, exc)
            if tunnel is None:
                return None
        if generation != self._generation:
            tunnel.abort("forward stopped")
            raise TenderError("the forward stopped")
        if self._tunnel is not None:
            self._retire_current()
        self._tunnel = tunnel
        return tunnel

    async def _fall_back(self, pod: str, port: int, exc: TenderError) -> Tunnel | None:
        """The POST upgrade failed with ``exc``: the WebSocket tunnel, then v4.

        Returns the WebSocket tunnel, or None when v4 works; raises the error
        to show otherwise (the WebSocket's own precise one: a missing pod,
        bad credentials, an unreachable cluster, a 5xx; v4's, except that
        when v4 and the upgrade were both refused with 403 the upgrade's,
        naming ``create``, is shown).  The path that
        worked is kept (``self.protocol``).
        """
        try:
            tunnel = await Tunnel.open(self._api, self._namespace, pod, idle_close=self.idle_close)
        except (NotFound, Unauthorized, ClusterUnreachable):
            raise
        except TenderError as ws_exc:
            if _kubelet_trouble(ws_exc):
                raise
            log.info("port-forward to %s: the SPDY upgrade failed (%s), and the WebSocket tunnel too (%s)",
                     pod, exc, ws_exc)
        else:
            log.info("port-forward to %s: the SPDY upgrade failed (%s); using the WebSocket tunnel", pod, exc)
            self.protocol = "tunnel"
            return tunnel
        # Perhaps an API server without the tunnel: does v4 work?
        try:
            await self._open_and_close_v4(pod, port)
        except ForbiddenError:
            if isinstance(exc, ForbiddenError):
                raise exc from None  # refused everywhere: the upgrade's 403 names `create`, what kubectl needs
            raise
        log.info("port-forward to %s: no SPDY session could be opened (%s); using v4.channel.k8s.io", pod, exc)
        self.protocol = "v4"
        return None


def _kubelet_trouble(exc: TenderError) -> bool:
    """A 5xx: the API server could not reach the kubelet now (a moment's trouble, not a protocol matter)."""
    return isinstance(exc, ApiError) and exc.status >= 500


class PodDialers:
    """A :class:`Dialer` per pod: one forward's connections to several pods at once.  Runs on the engine's loop.

    Used by a Service forward that spreads its connections (``balance:
    round-robin`` or ``sticky``, :mod:`tray.domain.balance`); it has the
    shape of one :class:`Dialer` (:class:`~tray.engine.reconnect.PodDialer`),
    each call going to the pod's own Dialer, made on its first use.  The path
    the first Dialers found to work (the tunnel, the POST upgrade or v4) is
    where the later ones start.  :meth:`retain` lets go of the pods that
    left the rotation: their connections finish on their tunnels.
    """

    def __init__(self, api: KubeAPI, namespace: str, *, protocol: str | None = None,
                 idle_close: float | None = None) -> None:
        """``api``, ``namespace``, ``protocol``, ``idle_close``: as for :class:`Dialer`.  Opens nothing until the first call."""
        self._api, self._namespace = api, namespace
        self.protocol = protocol or protocol_from_env()
        self.idle_close = idle_close_from_env() if idle_close is None else idle_close
        self._dialers: dict[str, Dialer] = {}
        self._uids: dict[str, str] = {}  # the uid each Dialer's pod had when last retained
        self._departed: list[Dialer] = []  # pods that left: their tunnels carry open connections still

    @property
    def pods(self) -> list[str]:
        """The pods with a Dialer now (in rotation, or dialled since the last :meth:`retain`)."""
        return list(self._dialers)

    @property
    def tunnels(self) -> int:
        """Tunnels open now over every pod (:attr:`Dialer.tunnels`), departed pods' included.  Never blocks."""
        return sum(d.tunnels for d in [*self._dialers.values(), *self._departed])

    def _for(self, pod: str) -> Dialer:
        dialer = self._dialers.get(pod)
        if dialer is None:
            dialer = self._dialers[pod] = Dialer(self._api, self._namespace, protocol=self.protocol,
                                                 idle_close=self.idle_close)
        return dialer

    def _learn(self, dialer: Dialer) -> None:
        if dialer.protocol != self.protocol and self.protocol == "auto":
            self.protocol = dialer.protocol  # the fallback found the path that works here

    async def connect(self, pod: str, port: int) -> Link:
        """A way to ``pod``'s container ``port`` for one new connection: :meth:`Dialer.connect` of the pod's Dialer."""
        dialer = self._for(pod)
        try:
            return await dialer.connect(pod, port)
        finally:
            self._learn(dialer)

    async def check(self, pod: str, port: int) -> None:
        """Prove the path to ``pod`` works now: :meth:`Dialer.check` of the pod's Dialer."""
        dialer = self._for(pod)
        try:
            await dialer.check(pod, port)
        finally:
            self._learn(dialer)

    def connection_failed(self, *, dropped: bool, pod: str = "") -> None:
        """A connection to ``pod`` ended in an error or a drop (:meth:`Dialer.connection_failed`);
        ``pod`` "" means every pod's.  Never blocks; never raises."""
        for name, dialer in list(self._dialers.items()):
            if not pod or name == pod:
                dialer.connection_failed(dropped=dropped)

    def pod_changed(self) -> None:
        """New connections start afresh on every pod: all the tunnels and spares retire (open connections finish).

        Never blocks; never raises.
        """
        self.retain({})

    def retain(self, pods: Mapping[str, str | None]) -> None:
        """Keep the Dialers of ``pods`` (names to uids, None: unknown); retire the others' tunnels.

        A pod made again under its name (another uid: a StatefulSet's) is
        another pod: its old Dialer retires too.  Open connections finish
        on the retired tunnels.  Never blocks; never raises.
        """
        for name in list(self._dialers):
            uid = pods.get(name)
            known = self._uids.get(name)
            if name not in pods or (uid is not None and known is not None and uid != known):
                dialer = self._dialers.pop(name)
                self._uids.pop(name, None)
                dialer.pod_changed()
                self._departed.append(dialer)
        for name, uid in pods.items():
            if name in self._dialers and uid is not None:
                self._uids[name] = uid
        self._departed = [d for d in self._departed if not d.idle]

    def close(self) -> None:
        """Drop everything on every pod (:meth:`Dialer.close`); the object may be used again.  Never blocks."""
        for dialer in [*self._dialers.values(), *self._departed]:
            dialer.close()
        self._dialers.clear()
        self._uids.clear()
        self._departed.clear()
