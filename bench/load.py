"""The benchmark's load clients: raw sockets and minimal HTTP/1.1.

They run in worker processes of their own (``python -m bench.load``, one JSON
job on stdin, one JSON result on stdout), so the client never shares a GIL
with the benchmark's bookkeeping threads, and a concurrency job can be spread
over several processes.  Every client times itself with
``time.monotonic()`` (CLOCK_MONOTONIC, the same clock in every process on
the machine), so the parent can line its samples up with its own events.

Jobs (``{"kind": ..., ...}``):

* ``download``: GET ``/bytes?n=N`` on one connection; seconds from connect to
  the last byte.
* ``upload``: POST N bytes to ``/upload``; seconds from connect to the answer
  (the server's count of the bytes it read, checked against N).
* ``latency``: COUNT sequential GETs of ``/hostname``, each on a new TCP
  connection with ``Connection: close``; per-request milliseconds from
  ``connect()`` to the last byte of the response.
* ``concurrency``: CLIENTS coroutines x REQUESTS each, a new connection per
  request, all starting at ``start_at``.
* ``probe``: for each named port, a new connection every INTERVAL seconds
  (whether or not the previous one has finished) until the parent writes a
  line to stdin (or closes it); every attempt is recorded.

``latency`` and ``concurrency`` take an optional ``via``: ``{"proxy": "http" | "socks5",
"host": NAME, "port": N}`` sends each request through the proxy listening on
``port`` (the job's) to NAME:N: an absolute-URI GET for ``http`` (RFC 9112
section 3.2.2), a SOCKS5 CONNECT with the name resolved by the proxy for
``socks5`` (RFC 1928, ATYP 3), the time of the handshake included.

Nothing here retries: a failed request is a sample, with its reason.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
import time
from typing import Any

HOST = "127.0.0.1"
CHUNK = 1 << 20


class HTTPError(Exception):
    pass


def _request(method: str, path: str, body_len: int | None = None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\nUser-Agent: tender-bench\r\nConnection: close\r\n"
    if body_len is not None:
        head += f"Content-Type: application/octet-stream\r\nContent-Length: {body_len}\r\n"
    return (head + "\r\n").encode()


def _parse_head(head: bytes) -> tuple[int, int | None]:
    """(status, Content-Length or None) of a response head (without the blank line)."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise HTTPError(f"bad status line {lines[0][:60]!r}")
    status = int(parts[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return status, length


# ------------------------------------------------------------------ blocking
def _read_head(sock: socket.socket) -> tuple[int, int | None, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise HTTPError("connection closed before the response" if not buf else "truncated response head")
        buf += chunk
        if len(buf) > 65536:
            raise HTTPError("response head too long")
    head, _, rest = buf.partition(b"\r\n\r\n")
    status, length = _parse_head(head)
    return status, length, rest


def _socks5_request(host: str, port: int) -> bytes:
    """A SOCKS5 CONNECT to ``host``:``port`` by name (RFC 1928 section 4, ATYP 3)."""
    name = host.encode()
    return b"\x05\x01\x00\x03" + bytes([len(name)]) + name + port.to_bytes(2, "big")


def _socks5_reply_len(head: bytes) -> int:
    """The length of a SOCKS5 reply from its first 5 bytes (RFC 1928 section 6)."""
    atyp = head[3]
    return 4 + {1: 4, 4: 16}.get(atyp, 1 + head[4]) + 2


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise HTTPError("the proxy closed the connection during the handshake")
        buf += chunk
    return buf


def _proxied_request(path: str, via: dict[str, Any] | None) -> bytes:
    if via is not None and via["proxy"] == "http":
        return _request("GET", f"http://{via['host']}:{via['port']}{path}")
    return _request("GET", path)


def _get_small(port: int, path: str, timeout: float, via: dict[str, Any] | None = None) -> bytes:
    """One GET on a new connection (through ``via``, see the module); the body.  Raises on any failure."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if via is not None and via["proxy"] == "socks5":
            sock.sendall(b"\x05\x01\x00")
            if _recv_exact(sock, 2) != b"\x05\x00":
                raise HTTPError("the SOCKS5 proxy refused the no-authentication method")
            sock.sendall(_socks5_request(via["host"], via["port"]))
            head = _recv_exact(sock, 5)
            rest = _recv_exact(sock, _socks5_reply_len(head) - 5)
            if head[1] != 0:
                raise HTTPError(f"SOCKS5 reply {head[1]}")
            del rest
        sock.sendall(_proxied_request(path, via))
        status, length, body = _read_head(sock)
        while length is None or len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                if length is None:
                    break
                raise HTTPError(f"body truncated at {len(body)} of {length} bytes")
            body += chunk
        if status != 200:
            raise HTTPError(f"HTTP {status}")
        return body


def download(port: int, n: int, timeout: float = 60.0) -> dict[str, Any]:
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    t0 = time.monotonic()
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(_request("GET", f"/bytes?n={n}"))
            status, length, rest = _read_head(sock)
            if status != 200:
                raise HTTPError(f"HTTP {status}")
            got = len(rest)
            want = n if length is None else length
            while got < want:
                k = sock.recv_into(view)
                if not k:
                    raise HTTPError(f"download truncated at {got} of {want} bytes")
                got += k
        t1 = time.monotonic()
        if got != n:
            raise HTTPError(f"got {got} bytes, asked for {n}")
        return {"ok": True, "bytes": got, "seconds": t1 - t0, "t0": t0, "t1": t1}
    except (OSError, HTTPError, ValueError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "seconds": time.monotonic() - t0}


def upload(port: int, n: int, timeout: float = 60.0) -> dict[str, Any]:
    view = memoryview(bytes(CHUNK))
    t0 = time.monotonic()
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(_request("POST", "/upload", n))
            left = n
            while left:
                k = min(left, CHUNK)
                sock.sendall(view[:k])
                left -= k
            status, length, body = _read_head(sock)
            while length is None or len(body) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
        t1 = time.monotonic()
        if status != 200:
            raise HTTPError(f"HTTP {status}")
        if body.strip() != str(n).encode():
            raise HTTPError(f"server read {body.strip()[:40]!r} bytes, sent {n}")
        return {"ok": True, "bytes": n, "seconds": t1 - t0, "t0": t0, "t1": t1}
    except (OSError, HTTPError, ValueError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "seconds": time.monotonic() - t0}


def latency(port: int, count: int, path: str = "/hostname", timeout: float = 10.0,
            via: dict[str, Any] | None = None) -> dict[str, Any]:
    samples: list[float] = []
    errors: list[str] = []
    t_start = time.monotonic()
    for _ in range(count):
        t0 = time.perf_counter()
        try:
            _get_small(port, path, timeout, via)
        except (OSError, HTTPError, ValueError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:200])
            continue
        samples.append((time.perf_counter() - t0) * 1000.0)
    return {"ms": samples, "errors": errors, "seconds": time.monotonic() - t_start}


# ------------------------------------------------------------------ asyncio
async def _arecv_exact(loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = await loop.sock_recv(sock, n - len(buf))
        if not chunk:
            raise HTTPError("the proxy closed the connection during the handshake")
        buf += chunk
    return buf


async def _aget(loop: asyncio.AbstractEventLoop, port: int, request: bytes,
                via: dict[str, Any] | None = None) -> bytes:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await loop.sock_connect(sock, (HOST, port))
        if via is not None and via["proxy"] == "socks5":
            await loop.sock_sendall(sock, b"\x05\x01\x00")
            if await _arecv_exact(loop, sock, 2) != b"\x05\x00":
                raise HTTPError("the SOCKS5 proxy refused the no-authentication method")
            await loop.sock_sendall(sock, _socks5_request(via["host"], via["port"]))
            head = await _arecv_exact(loop, sock, 5)
            await _arecv_exact(loop, sock, _socks5_reply_len(head) - 5)
            if head[1] != 0:
                raise HTTPError(f"SOCKS5 reply {head[1]}")
        await loop.sock_sendall(sock, request)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = await loop.sock_recv(sock, 65536)
            if not chunk:
                raise HTTPError("connection closed before the response" if not buf else "truncated head")
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        status, length = _parse_head(head)
        while length is None or len(body) < length:
            chunk = await loop.sock_recv(sock, 65536)
            if not chunk:
                if length is None:
                    break
                raise HTTPError(f"body truncated at {len(body)} of {length} bytes")
            body += chunk
        if status != 200:
            raise HTTPError(f"HTTP {status}")
        return body
    finally:
        sock.close()


async def _concurrency(port: int, clients: int, requests: int, start_at: float, timeout: float,
                       via: dict[str, Any] | None = None) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    request = _proxied_request("/hostname", via)
    ms: list[float] = []
    errors: list[str] = []
    ends: list[float] = []

    async def client() -> None:
        for _ in range(requests):
            t0 = time.perf_counter()
            try:
                await asyncio.wait_for(_aget(loop, port, request, via), timeout)
            except (OSError, HTTPError, ValueError, TimeoutError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
            else:
                ms.append((time.perf_counter() - t0) * 1000.0)
        ends.append(time.monotonic())

    delay = start_at - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
    t_start = time.monotonic()
    await asyncio.gather(*(client() for _ in range(clients)))
    return {"ms": ms, "errors": errors, "t_start": t_start, "t_end": max(ends) if ends else t_start}


async def _probe(ports: dict[str, int], interval: float, timeout: float, max_seconds: float) -> dict[str, Any]:
    """A new connection to every port each `interval` s until told to stop."""
    loop = asyncio.get_running_loop()
    request = _request("GET", "/hostname")
    stop = asyncio.Event()
    results: dict[str, list[list[Any]]] = {name: [] for name in ports}

    def wait_stdin() -> None:
        sys.stdin.readline()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait_stdin, daemon=True).start()
    print(json.dumps({"ready": True}), flush=True)

    async def one(name: str, port: int) -> None:
        t0 = time.monotonic()
        try:
            body = await asyncio.wait_for(_aget(loop, port, request), timeout)
        except (OSError, HTTPError, ValueError, TimeoutError) as exc:
            results[name].append([t0, time.monotonic(), False, f"{type(exc).__name__}: {exc}"[:120]])
        else:
            results[name].append([t0, time.monotonic(), True, body.decode(errors="replace").strip()[:100]])

    tasks: set[asyncio.Task[None]] = set()
    t_begin = time.monotonic()
    tick = 0
    while not stop.is_set() and time.monotonic() - t_begin < max_seconds:
        for name, port in ports.items():
            task = loop.create_task(one(name, port))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        tick += 1
        next_at = t_begin + tick * interval
        try:
            await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))
        except TimeoutError:
            pass
    if tasks:
        await asyncio.wait(list(tasks), timeout=timeout + 1)
    for name in results:
        results[name].sort(key=lambda r: r[0])
    return {"results": results, "t_begin": t_begin, "t_end": time.monotonic()}


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    kind = job["kind"]
    if kind == "download":
        return download(job["port"], job["n"], job.get("timeout", 60.0))
    if kind == "upload":
        return upload(job["port"], job["n"], job.get("timeout", 60.0))
    if kind == "latency":
        return latency(job["port"], job["count"], job.get("path", "/hostname"), job.get("timeout", 10.0),
                       job.get("via"))
    if kind == "concurrency":
        return asyncio.run(_concurrency(job["port"], job["clients"], job["requests"], job["start_at"],
                                        job.get("timeout", 15.0), job.get("via")))
    if kind == "probe":
        return asyncio.run(_probe(job["ports"], job["interval"], job.get("timeout", 5.0),
                                  job.get("max_seconds", 300.0)))
    raise ValueError(f"unknown job kind {kind!r}")


def main() -> int:
    job = json.loads(sys.argv[1]) if len(sys.argv) > 1 else json.loads(sys.stdin.readline())
    result = run_job(job)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
