"""Sans-I/O byte formats of the port-forward protocols: bytes in, events out.

Rule: standard library only, no asyncio, no I/O (import-linter holds it).

* :mod:`~tray.wire.spdy` -- SPDY/3.1 frames as the kubelet's port-forward
  speaks them (kubectl's default path, tunnelled over one WebSocket).
* :mod:`~tray.wire.framing` -- the ``v4.channel.k8s.io`` channel protocol
  (one WebSocket per connection).
* :mod:`~tray.wire.wsstream` -- WebSocket frame headers, so binary payload
  can be fed to the SPDY parser as a byte stream.
"""
