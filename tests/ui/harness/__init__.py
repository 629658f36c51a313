"""A hermetic Linux desktop for end-to-end tray tests, and clients that see what a person sees.

* ``desktop``: :class:`~tests.ui.harness.desktop.Desktop` -- Xvfb, a private session bus that
  activates only the harness's services, the real xfce4-panel (its Status Tray is the
  StatusNotifierWatcher and host and draws dbusmenu menus), xfce4-notifyd or a broken/missing
  notification service, screenshots into tests/artifacts/; ``drawn_boxes`` finds what is drawn
  in a region of a screenshot.
* ``app``: :class:`~tests.ui.harness.app.TrayApp` -- ``tender tray`` as a user runs it, from
  ``.venv-user`` (a plain ``pip install .``, no PyGObject) with a private HOME.
* ``dbusmenu``: :class:`~tests.ui.harness.dbusmenu.TrayMenu` -- finds the item through the
  watcher, reads its properties and menu (``GetLayout``) and clicks by label path (``Event``).
* ``notifications``: :class:`~tests.ui.harness.notifications.NotificationMonitor` -- a bus
  monitor recording every ``Notify``/``CloseNotification`` call, ``ActionInvoked`` and
  ``NotificationClosed``, and errors such as a service that crashed on activation.
* ``bus``: a blocking dbus-fast client on a background event loop (no gi anywhere).

Debian packages: tests/debian-packages.txt (xfce4-panel, xfconf, xfce4-notifyd, xvfb, dbus,
xdotool, imagemagick, x11-utils, trayer for the XEmbed test).
"""
