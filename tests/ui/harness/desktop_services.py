"""Stand-ins for a desktop's tray host and notification daemon, on a private session bus.

Debian 12 ships no StatusNotifierWatcher outside of full desktops, so the
end-to-end tests run this small one: it owns ``org.kde.StatusNotifierWatcher``
(items register, a host is always "registered" so libayatana-appindicator
exports its item instead of falling back to an XEmbed icon) and
``org.freedesktop.Notifications`` (every Notify call is appended as one JSON
line to the file named on the command line, which the tests read).

Run: ``python -m tests.ui.harness.desktop_services NOTIFICATIONS.jsonl [--no-notifications]``;
it prints "ready" once its names are owned (``--no-notifications``: a desktop
without a notification service).
"""

from __future__ import annotations

import json
import sys
import time

import gi

gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

WATCHER_XML = """
<node>
  <interface name="org.kde.StatusNotifierWatcher">
    <method name="RegisterStatusNotifierItem"><arg name="service" type="s" direction="in"/></method>
    <method name="RegisterStatusNotifierHost"><arg name="service" type="s" direction="in"/></method>
    <property name="RegisteredStatusNotifierItems" type="as" access="read"/>
    <property name="IsStatusNotifierHostRegistered" type="b" access="read"/>
    <property name="ProtocolVersion" type="i" access="read"/>
    <signal name="StatusNotifierItemRegistered"><arg type="s"/></signal>
    <signal name="StatusNotifierItemUnregistered"><arg type="s"/></signal>
    <signal name="StatusNotifierHostRegistered"/>
    <signal name="StatusNotifierHostUnregistered"/>
  </interface>
</node>
"""

NOTIFY_XML = """
<node>
  <interface name="org.freedesktop.Notifications">
    <method name="Notify">
      <arg type="s" direction="in"/><arg type="u" direction="in"/><arg type="s" direction="in"/>
      <arg type="s" direction="in"/><arg type="s" direction="in"/><arg type="as" direction="in"/>
      <arg type="a{sv}" direction="in"/><arg type="i" direction="in"/><arg type="u" direction="out"/>
    </method>
    <method name="CloseNotification"><arg type="u" direction="in"/></method>
    <method name="GetCapabilities"><arg type="as" direction="out"/></method>
    <method name="GetServerInformation">
      <arg type="s" direction="out"/><arg type="s" direction="out"/>
      <arg type="s" direction="out"/><arg type="s" direction="out"/>
    </method>
    <signal name="NotificationClosed"><arg type="u"/><arg type="u"/></signal>
    <signal name="ActionInvoked"><arg type="u"/><arg type="s"/></signal>
  </interface>
</node>
"""

WATCHER_PATH = "/StatusNotifierWatcher"
NOTIFY_PATH = "/org/freedesktop/Notifications"


class Services:
    def __init__(self, conn: Gio.DBusConnection, log_path: str) -> None:
        self.conn = conn
        self.log_path = log_path
        self.items: dict[str, str] = {}  # "busname/path" -> owner unique name
        self.next_id = 1
        conn.signal_subscribe("org.freedesktop.DBus", "org.freedesktop.DBus", "NameOwnerChanged",
                              "/org/freedesktop/DBus", None, Gio.DBusSignalFlags.NONE, self._owner_changed)

    # -- StatusNotifierWatcher
    def watcher_call(self, conn, sender, path, iface, method, params, invocation):  # noqa: ANN001
        if method == "RegisterStatusNotifierItem":
            (service,) = params.unpack()
            # Items pass either their bus name or their object path.
            key = f"{sender}{service}" if service.startswith("/") else f"{service}/StatusNotifierItem"
            self.items[key] = sender
            invocation.return_value(None)
            self._emit("StatusNotifierItemRegistered", GLib.Variant("(s)", (key,)))
        elif method == "RegisterStatusNotifierHost":
            invocation.return_value(None)
            self._emit("StatusNotifierHostRegistered", None)
        else:
            invocation.return_dbus_error("org.freedesktop.DBus.Error.UnknownMethod", method)

    def watcher_get(self, conn, sender, path, iface, prop):  # noqa: ANN001
        if prop == "RegisteredStatusNotifierItems":
            return GLib.Variant("as", sorted(self.items))
        if prop == "IsStatusNotifierHostRegistered":
            return GLib.Variant("b", True)
        if prop == "ProtocolVersion":
            return GLib.Variant("i", 0)
        return None

    def _emit(self, name: str, params: GLib.Variant | None) -> None:
        self.conn.emit_signal(None, WATCHER_PATH, "org.kde.StatusNotifierWatcher", name, params)

    def _owner_changed(self, conn, sender, path, iface, signal, params):  # noqa: ANN001
        name, _old, new = params.unpack()
        if new:
            return
        for key, owner in list(self.items.items()):
            if owner == name:
                del self.items[key]
                self._emit("StatusNotifierItemUnregistered", GLib.Variant("(s)", (key,)))

    # -- Notifications
    def notify_call(self, conn, sender, path, iface, method, params, invocation):  # noqa: ANN001
        if method == "Notify":
            app, replaces, icon, summary, body, actions, hints, timeout = params.unpack()
            nid = replaces or self.next_id
            self.next_id += 1
            record = {"id": nid, "app": app, "summary": summary, "body": body, "icon": icon,
                      "time": time.time()}
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            invocation.return_value(GLib.Variant("(u)", (nid,)))
        elif method == "CloseNotification":
            invocation.return_value(None)
        elif method == "GetCapabilities":
            invocation.return_value(GLib.Variant("(as)", (["body"],)))
        elif method == "GetServerInformation":
            invocation.return_value(GLib.Variant("(ssss)", ("tender-test", "tender", "1", "1.2")))
        else:
            invocation.return_dbus_error("org.freedesktop.DBus.Error.UnknownMethod", method)


def main() -> None:
    log_path = sys.argv[1]
    open(log_path, "a").close()
    conn = Gio.bus_get_sync(Gio.BusType.SESSION, None)
    services = Services(conn, log_path)
    watcher = Gio.DBusNodeInfo.new_for_xml(WATCHER_XML).interfaces[0]
    notify = Gio.DBusNodeInfo.new_for_xml(NOTIFY_XML).interfaces[0]
    conn.register_object(WATCHER_PATH, watcher, services.watcher_call, services.watcher_get, None)
    names = ["org.kde.StatusNotifierWatcher"]
    if "--no-notifications" not in sys.argv:
        conn.register_object(NOTIFY_PATH, notify, services.notify_call, None, None)
        names.append("org.freedesktop.Notifications")
    for name in names:
        reply = conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "RequestName", GLib.Variant("(su)", (name, 4)), GLib.VariantType("(u)"),
                               Gio.DBusCallFlags.NONE, -1, None)
        if reply.unpack()[0] != 1:
            sys.exit(f"could not own {name}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
