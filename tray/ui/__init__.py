"""The tray app: a shell around :class:`tray.engine.manager.ForwardManager`.

How the pieces fit (each module has one job):

* ``menu`` / ``menu_clusters`` / ``menu_profiles`` / ``labels`` turn plain data (sessions,
  profiles, clusters, resource lists, settings) into a menu *model*
  (``model.Item``) -- pure functions, unit-tested without a display.
* ``pystray_menu`` is the only module that turns a model into pystray
  objects; ``view`` owns the pystray icon.  Nothing else imports pystray,
  and the engine knows nothing of any of this.
* ``controller`` glues it together.  Engine events arrive on the engine
  thread and only *poke* a ``coalesce.Coalescer``, which rebuilds the menu
  on its own thread at most every 250 ms; menu clicks arrive on the UI
  thread and are handed to a worker pool.  No Kubernetes call ever runs on
  the UI thread.
* ``notify`` turns status transitions into (burst-coalesced) notifications;
  ``loader`` loads the Clusters submenu's lists in the background
  through the engine's browse API (:mod:`tray.engine.browse`) and
  ``resources`` holds them;
  ``filewatch`` notices edits of the profiles file and the kubeconfig.
* ``settings``, ``autostart``, ``desktop``, ``dialogs``, ``system``,
  ``host`` and ``logs`` are the small platform pieces.
"""
