"""The control API's client: what the ``tender`` verbs use to drive the running engine.

httpx over the engine's unix socket (:func:`tray.api.claim.socket_path`).
Every failure is one of two exceptions: :class:`NoEngine` (nothing listens:
no engine runs, or it was killed and left its socket file) and
:class:`ApiError` (the engine refused the request, its sentence naming the
field; it hung up without answering; or the socket file is another user's
and is not talked to).  Calls block for at most the client's ``timeout``
(seconds), except :meth:`EngineClient.events`, which streams until the
engine goes or the caller stops iterating.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tray.api.claim import socket_path
from tray.api.schema import ApiError

__all__ = ["EngineClient", "NoEngine", "ApiError", "connect"]


class NoEngine(Exception):
    """No engine answers on the socket (none runs, or a killed one left its socket file)."""


class EngineClient:
    """A connection to the engine's API at ``path`` (default: this user's socket).

    ``timeout``: seconds any call may wait for an answer (the engine's stop
    of many forwards may take a while: the verbs pass more).
    """

    def __init__(self, path: str | Path | None = None, timeout: float = 30.0) -> None:
        self.path = str(path or socket_path())
        self._http = httpx.Client(transport=httpx.HTTPTransport(uds=self.path), base_url="http://tender",
                                  timeout=timeout)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """``method`` ``path`` (``/v1/...``) with a JSON ``body``; returns the answer's JSON.

        Raises :class:`NoEngine` when nothing listens, :class:`ApiError` for
        a 4xx/5xx answer (its ``error`` and ``field``), for no answer in
        time (504) and for a connection the engine closed without answering
        (503: it stopped or was killed meanwhile).
        """
        self._check_owner()
        try:
            response = self._http.request(method, path, json=body)
        except (httpx.ConnectError, FileNotFoundError) as exc:
            raise NoEngine(f"no Tender engine is running ({self.path}: {_reason(exc)})") from None
        except httpx.TimeoutException:
            raise ApiError(504, f"the engine did not answer within {self._http.timeout.read} s") from None
        except httpx.TransportError as exc:  # connected, then the engine went away before it answered
            raise ApiError(503, f"the engine closed the connection without answering ({_reason(exc)}); "
                                "it may have stopped") from None
        return _decode(response)

    def _check_owner(self) -> None:
        """Refuse a socket file another user owns: not this user's engine (raises :class:`ApiError` 403).

        The engine's directory is 0700, so only a careless chmod lets another
        user replace the socket; then they would see every request and
        choose every answer (the dashboard's URL among them).  A missing
        file is left to the connect, which says so.
        """
        if not hasattr(os, "getuid"):
            return
        try:
            owner = os.lstat(self.path).st_uid
        except OSError:
            return
        if owner != os.getuid():
            raise ApiError(403, f"{self.path} belongs to uid {owner}, not to you (uid {os.getuid()}): not talking "
                                f"to it; make {Path(self.path).parent} mode 0700 and restart the engine")

    def get(self, path: str) -> Any:
        """``GET path``; see :meth:`request`."""
        return self.request("GET", path)

    def post(self, path: str, body: Any = None) -> Any:
        """``POST path`` with ``body``; see :meth:`request`."""
        return self.request("POST", path, body if body is not None else {})

    def delete(self, path: str) -> Any:
        """``DELETE path``; see :meth:`request`."""
        return self.request("DELETE", path)

    def events(self, stop_on_close: list[str] | None = None) -> Iterator[dict[str, Any]]:
        """Follow ``GET /v1/events``: yields each event object (``ping`` included) as it arrives.

        ``stop_on_close``: forward ids the engine stops when this stream ends,
        however this process ends (a joined ``tender forward``).  Blocks
        between events; ends when the engine closes the stream.  Raises
        :class:`NoEngine` if there is none to follow.
        """
        self._check_owner()
        path = "/v1/events" + (f"?stop_on_close={','.join(stop_on_close)}" if stop_on_close else "")
        try:
            with self._http.stream("GET", path, timeout=httpx.Timeout(10.0, read=None)) as response:
                if response.status_code != 200:
                    response.read()
                    _decode(response)
                for line in response.iter_lines():
                    if line.strip():
                        yield json.loads(line)
        except (httpx.ConnectError, FileNotFoundError) as exc:
            raise NoEngine(f"no Tender engine is running ({self.path}: {_reason(exc)})") from None
        except (httpx.RemoteProtocolError, httpx.ReadError):
            return  # the engine went away (mid-stream, or before it answered)


def connect(path: str | Path | None = None, timeout: float = 30.0) -> EngineClient | None:
    """A client of the running engine, or None when none answers (checked with ``GET /v1/engine``).

    Blocks for at most ``timeout`` seconds.
    """
    client = EngineClient(path, timeout)
    try:
        client.get("/v1/engine")
    except NoEngine:
        client.close()
        return None
    return client


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if "No such file" in text or isinstance(exc, FileNotFoundError):
        return "no socket"
    if "refused" in text.lower():
        return "nothing listens; a stopped engine left it"
    return text or type(exc).__name__


def _decode(response: httpx.Response) -> Any:
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code >= 400:
        if isinstance(data, dict) and "error" in data:
            raise ApiError(response.status_code, str(data["error"]), data.get("field"))
        raise ApiError(response.status_code, f"the engine answered {response.status_code}")
    return data
