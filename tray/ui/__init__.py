"""The tray app: a shell around :class:`tray.engine.manager.ForwardManager`.

How the pieces fit (each module has one job):

* ``menu`` / ``menu_clusters`` / ``menu_profiles`` / ``labels`` turn plain data (sessions,
  profiles, profile failures, clusters, resource lists, settings) into a menu *model*
  (``model.Item``) -- pure functions, unit-tested without a display; ``icon`` draws the logo
  with its state badge.
* The view shows a model.  On Linux with a StatusNotifier host it is ``sni.SniView``: our
  own ``org.kde.StatusNotifierItem`` and ``com.canonical.dbusmenu`` on dbus-fast (``bus``
  finds and keeps the session bus; ``dbusmenu`` turns a model into a layout with stable ids
  and the smallest update, pure).  On XEmbed-only desktops, macOS and Windows it is
  ``view.PystrayView`` (``pystray_menu`` adapts the model).  ``host`` decides which, or why
  there is no tray; ``app`` wires it all and hosts the one engine of the user
  (:mod:`tray.api`: the claim, the control API, the dashboard).
  The engine knows nothing of any of this.
* ``controller`` glues it together.  Engine events arrive on the engine
  thread and only *poke* a ``coalesce.Coalescer``, which rebuilds the menu
  on its own thread at most every 250 ms; menu clicks arrive on the UI
  thread and are handed to a worker pool.  No Kubernetes call ever runs on
  the UI thread.
* ``notify`` decides what deserves a notification (errors, long reconnects,
  recoveries; bursts summarised; one card per forward) and with which actions;
  ``dbusnotify`` shows them through ``org.freedesktop.Notifications`` on Linux
  and hands a clicked action back to the controller (plyer elsewhere).
* ``loader`` loads the Clusters submenu's lists (and searches) in the background
  through the engine's browse API (:mod:`tray.engine.browse`) and
  ``resources`` holds them; ``filewatch`` notices edits of the profiles file
  and the kubeconfig.
* ``settings``, ``autostart``, ``desktop``, ``dialogs``, ``system`` and ``logs``
  are the small platform pieces.
"""
