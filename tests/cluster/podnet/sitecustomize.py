"""The test cluster's emulated pod network, for Python process containers.

The test kubelet (tests/cluster/kubelet_podnet.go) runs a container whose
command is python3/python as a host process with this directory first on
PYTHONPATH, so Python imports this module at start-up. It patches
socket.socket (class level, so asyncio goes through it too):

- bind((HOST, P)) with P > 0 and HOST one of '', 0.0.0.0, ::, 127.0.0.1, ::1
  or the pod's IP really binds 127.0.0.1:0 (::1 for an IPv6 socket) and tells
  the kubelet that container port P/tcp|udp is there; getsockname() answers
  (HOST, P) as in the pod; close() withdraws the port.
- connect / connect_ex / sendto to (IP, port) with IP in the cluster's pod
  network or Service range go to the real address the kubelet names; a pod
  or Service the kubelet does not know refuses TCP (ECONNREFUSED) and drops
  UDP. getpeername() answers the address connected to, and recvfrom() shows
  a datagram from such a real address as coming from the pod IP and port it
  stands for. Every other address is left alone.
- getaddrinfo() of a cluster name (NAME.NS.svc.cluster.local, NAME.NS.svc,
  or NAME / NAME.NS as the pod's resolv.conf search list completes them)
  answers what cluster DNS would: a ClusterIP, a headless Service's ready
  endpoints, an ExternalName's target. Other names go to the host's resolver.

The channel is a Unix socket (abstract name in TENDER_PODNET_SOCKET) with one
line per request and per answer, authenticated by TENDER_PODNET_TOKEN; one
connection per process (reopened after fork), serialised by a lock. Answers
are cached for a second per (proto, ip, port).
"""

import errno
import ipaddress
import os
import socket
import threading
import time
import weakref

_SOCKET = os.environ.get("TENDER_PODNET_SOCKET", "")
_TOKEN = os.environ.get("TENDER_PODNET_TOKEN", "")
_POD_IP = os.environ.get("TENDER_PODNET_POD_IP", "")
_NAMESPACE = os.environ.get("TENDER_PODNET_NAMESPACE", "default")
_NETS = []
for _n in os.environ.get("TENDER_PODNET_NETWORKS", "").split(","):
    if _n.strip():
        _NETS.append(ipaddress.ip_network(_n.strip(), strict=False))

_CACHE_SECONDS = 1.0
_lock = threading.Lock()
_chan = None  # (pid, socket, file)
_cache = {}  # (proto, ip, port) -> (expiry, answer)
_bound = weakref.WeakKeyDictionary()  # socket -> (proto, port, family, shown address)
_peers = weakref.WeakKeyDictionary()  # socket -> the address it connected to, as the program named it
_reverse = {}  # (proto, real host, real port) -> (ip, port) it stands for: what recvfrom shows

_orig_bind = socket.socket.bind
_orig_connect = socket.socket.connect
_orig_connect_ex = socket.socket.connect_ex
_orig_sendto = socket.socket.sendto
_orig_getsockname = socket.socket.getsockname
_orig_getpeername = socket.socket.getpeername
_orig_recvfrom = socket.socket.recvfrom
_orig_recvfrom_into = socket.socket.recvfrom_into
_orig_close = socket.socket.close
_orig_detach = socket.socket.detach
_orig_getaddrinfo = socket.getaddrinfo
_names = {}  # name -> (expiry, answer words)


def _ask(line):
    """Send one request line, return the answer line (without the newline)."""
    global _chan
    with _lock:
        for attempt in (0, 1):
            if _chan is None or _chan[0] != os.getpid():
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                _orig_connect(s, "\0" + _SOCKET)
                f = s.makefile("rwb", buffering=0)
                f.write(("HELLO %s\n" % _TOKEN).encode())
                if f.readline().strip() != b"OK":
                    raise OSError(errno.EACCES, "test kubelet refused the pod network channel")
                _chan = (os.getpid(), s, f)
            try:
                _chan[2].write((line + "\n").encode())
                answer = _chan[2].readline()
                if answer:
                    return answer.decode().strip()
            except OSError:
                if attempt:
                    raise
            _chan = None
        raise OSError(errno.EIO, "test kubelet closed the pod network channel")


def _proto(sock):
    return "udp" if sock.type & 0xF == socket.SOCK_DGRAM else "tcp"


def _inet(sock):
    return sock.family in (socket.AF_INET, socket.AF_INET6)


def _cluster_ip(host):
    """The IPv4 address string if host is in the cluster's networks, else None."""
    if not isinstance(host, str):
        return None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.version != 4 or not any(ip in n for n in _NETS):
        return None
    return str(ip)


def _resolve(sock, address):
    """(real address or None if untouched, refused) for a destination."""
    if not _inet(sock) or not isinstance(address, tuple) or len(address) < 2:
        return None, False
    ip = _cluster_ip(address[0])
    if ip is None:
        return None, False
    proto, port = _proto(sock), int(address[1])
    key = (proto, ip, port)
    hit = _cache.get(key)
    now = time.monotonic()
    if hit is None or hit[0] < now:
        hit = (now + _CACHE_SECONDS, _ask("RESOLVE %s %s %d" % key))
        _cache[key] = hit
    answer = hit[1].split()
    if answer[0] == "REFUSED":
        return None, True
    host, _, real = answer[1].rpartition(":")
    _reverse[(proto, host, int(real))] = (ip, port)
    if sock.family == socket.AF_INET6:
        host = "::ffff:" + host
    return (host, int(real)) + tuple(address[2:]), False


def bind(self, address):
    if _inet(self) and isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        local = ("", "0.0.0.0", "::", "127.0.0.1", "::1", "localhost", _POD_IP)
        if host == _POD_IP and port == 0:
            return _orig_bind(self, ("127.0.0.1", 0))
        if isinstance(port, int) and port > 0 and host in local:
            six = self.family == socket.AF_INET6
            _orig_bind(self, (("::1" if six else "127.0.0.1"), 0) + tuple(address[2:]))
            real = _orig_getsockname(self)
            proto = _proto(self)
            answer = _ask("BIND %s %d %s %s:%d" % (proto, port, "6" if six else "4",
                                                     "[%s]" % real[0] if six else real[0], real[1]))
            if answer != "OK":
                raise OSError(errno.EADDRINUSE, "Address already in use")
            _bound[self] = (proto, port, "6" if six else "4", (host, port) + tuple(real[2:]))
            return None
    return _orig_bind(self, address)


def connect(self, address):
    real, refused = _resolve(self, address)
    if refused:
        raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    if real is not None:
        _peers[self] = address
    return _orig_connect(self, real or address)


def connect_ex(self, address):
    real, refused = _resolve(self, address)
    if refused:
        return errno.ECONNREFUSED
    if real is not None:
        _peers[self] = address
    return _orig_connect_ex(self, real or address)


def sendto(self, data, *rest):
    address = rest[-1] if rest else None
    real, refused = _resolve(self, address)
    if refused:
        return len(data)  # a datagram to nowhere is dropped
    if real is not None:
        rest = rest[:-1] + (real,)
    return _orig_sendto(self, data, *rest)


def getsockname(self):
    b = _bound.get(self)
    if b is not None:
        return b[3]
    return _orig_getsockname(self)


def getpeername(self):
    peer = _peers.get(self)
    if peer is not None:
        return peer
    return _orig_getpeername(self)


def _shown(sock, address):
    """A datagram's source as the program would see it: the pod IP, not the stand-in's."""
    if _reverse and isinstance(address, tuple):
        host = address[0][7:] if address[0].startswith("::ffff:") else address[0]
        hit = _reverse.get((_proto(sock), host, address[1]))
        if hit is not None:
            if sock.family == socket.AF_INET6:
                return ("::ffff:" + hit[0], hit[1]) + tuple(address[2:])
            return hit
    return address


def recvfrom(self, *args):
    data, address = _orig_recvfrom(self, *args)
    return data, _shown(self, address)


def recvfrom_into(self, *args):
    n, address = _orig_recvfrom_into(self, *args)
    return n, _shown(self, address)


def _name(host):
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    return host.lower().rstrip(".") if isinstance(host, str) else ""


def _candidates(host):
    """The cluster names host may stand for, in the order a pod's resolver tries them."""
    name = _name(host)
    if name in ("localhost", ""):
        return []
    try:
        ipaddress.ip_address(name)
        return []
    except ValueError:
        pass
    if name.endswith(".svc.cluster.local"):
        return [name]
    if name.endswith(".svc"):
        return [name + ".cluster.local"]
    if isinstance(host, str) and host.endswith("."):
        return []
    if name.count(".") == 0:
        return ["%s.%s.svc.cluster.local" % (name, _NAMESPACE)]
    if name.count(".") == 1:
        return [name + ".svc.cluster.local"]
    return []


def _lookup(name):
    now = time.monotonic()
    hit = _names.get(name)
    if hit is None or hit[0] < now:
        hit = (now + _CACHE_SECONDS, _ask("LOOKUP " + name).split())
        _names[name] = hit
    return hit[1]


def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0, _depth=0):
    names = _candidates(host)
    if not names or _depth > 8:
        return _orig_getaddrinfo(host, port, family, type, proto, flags)
    for name in names:
        answer = _lookup(name)
        if answer[0] == "CNAME":
            return getaddrinfo(answer[1], port, family, type, proto, flags, _depth + 1)
        if answer[0] == "IPS":
            result = []
            for ip in answer[1:]:
                try:
                    result += _orig_getaddrinfo(ip, port, family, type, proto, flags | socket.AI_NUMERICHOST)
                except socket.gaierror:
                    pass
            if result:
                return result
    if _name(host).endswith((".svc.cluster.local", ".svc")):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return _orig_getaddrinfo(host, port, family, type, proto, flags)


def _withdraw(sock):
    b = _bound.pop(sock, None)
    if b is not None:
        try:
            _ask("UNBIND %s %d %s" % (b[0], b[1], b[2]))
        except Exception:  # the channel is gone (exit): so is the port
            pass


def close(self):
    _withdraw(self)
    return _orig_close(self)


def detach(self):
    _withdraw(self)
    _peers.pop(self, None)
    return _orig_detach(self)


if _SOCKET and _TOKEN:
    socket.socket.bind = bind
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.socket.sendto = sendto
    socket.socket.getsockname = getsockname
    socket.socket.getpeername = getpeername
    socket.socket.recvfrom = recvfrom
    socket.socket.recvfrom_into = recvfrom_into
    socket.socket.close = close
    socket.socket.detach = detach
    socket.getaddrinfo = getaddrinfo
