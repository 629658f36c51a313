"""The old name of :mod:`tray.engine.v4` (the v4 link), kept while other code imports it.

``tray.engine.stream`` *is* the :mod:`tray.engine.v4` module object, not a
copy of its names: a test that patches ``tray.engine.stream.LINGER_IDLE``
changes what ``pump`` and the SPDY tunnel read.  The upgrade helpers it used
to define (``connect_websocket``, ``portforward_url``, ``close_ws``,
``forget_traceback``) live in :mod:`tray.kube.websocket` and are importable
from here too.  New code imports :mod:`tray.engine.v4` or
:mod:`tray.kube.websocket`.
"""

import sys

from tray.engine import v4

sys.modules[__name__] = v4
