"""The engine's control API (issue 13): one engine per user, driven by every interface.

The tray app or ``tender daemon`` hosts the engine (:mod:`tray.api.host`);
everything else drives it over HTTP + JSON on a unix socket, documented in
``docs/api.md``:

* :mod:`tray.api.claim` -- who hosts the engine: a ``flock`` and the socket beside it.
* :mod:`tray.api.schema` -- the JSON the API, the events and ``tender forward -o json`` share,
  and the validation of requests (one sentence naming the field).
* :mod:`tray.api.server` -- the aiohttp server on its own thread: the socket, the
  event stream, and the dashboard's loopback listener with its secret, Host and Origin checks.
* :mod:`tray.api.page`, ``static/`` -- the dashboard page.
* :mod:`tray.api.search` -- the dashboard's search over contexts, namespaces and resources.
* :mod:`tray.api.client` -- the client the ``tender`` verbs use (httpx over the socket).
* :mod:`tray.api.host` -- ``tender daemon``: the engine without a tray.

This layer sits between the tray (``tray.ui``) and the profiles: the engine
knows nothing of it.
"""
