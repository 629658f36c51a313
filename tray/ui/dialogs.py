"""Small dialogs: "Stop & Quit?", "Stop all in this cluster?", and "Custom port…".

They run in a child process (``python -m tray.ui.dialogs``) with tkinter,
so Tk never shares a process with the tray's GTK main loop and a dialog
never blocks the tray: the controller waits for the child on a worker
thread.  Without tkinter, zenity is tried (yes/no only); with neither, a
confirmation counts as "yes" (the user did click the item) and a custom
port cannot be asked for (logged).

The controller takes any object with ``confirm`` and ``ask_port``, so tests
can answer without a display; the end-to-end tests drive these real
dialogs with xdotool.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from tray.domain.portspec import is_port_name

log = logging.getLogger(__name__)

NO_TK = 3  # the child's exit code when tkinter is missing


@dataclass(frozen=True)
class PortRequest:
    resource: str  # "deploy/web"
    cluster: str  # "tender-a / demo"
    ports: tuple[tuple[int, str | None], ...]  # declared TCP ports (may be empty)
    used: tuple[int, ...] = ()  # local ports other forwards hold


def validate_port_form(remote: str, local: str, used: Sequence[int]) -> tuple[int | str, int] | str:
    """(remote, local) from the form's texts, or the one-line problem to show."""
    remote, local = remote.strip(), local.strip()
    if not remote:
        return "Enter the remote port (a number or a port name)."
    if remote.isdigit():
        r: int | str = int(remote)
        if not 1 <= int(remote) <= 65535:
            return "The remote port must be between 1 and 65535."
    elif is_port_name(remote):
        r = remote
    else:
        return f"“{remote}” is neither a port number nor a port name."
    if not local.isdigit() or not 1 <= int(local) <= 65535:
        return "The local port must be a number between 1 and 65535."
    if int(local) in used:
        return f"Local port {int(local)} is used by another forward."
    return r, int(local)


class Dialogs:
    """The real dialogs (each call blocks its worker thread until answered)."""

    def confirm(self, title: str, text: str, ok: str, cancel: str = "Cancel") -> bool:
        code, _ = self._run({"kind": "confirm", "title": title, "text": text, "ok": ok, "cancel": cancel})
        if code == NO_TK:
            return _zenity_confirm(title, text, ok, cancel)
        return code == 0

    def ask_port(self, request: PortRequest) -> tuple[int | str, int] | None:
        code, out = self._run({"kind": "port", "resource": request.resource, "cluster": request.cluster,
                               "ports": [list(p) for p in request.ports], "used": list(request.used)})
        if code == NO_TK:
            log.warning("cannot ask for a port: tkinter is not available")
            return None
        if code != 0 or not out:
            return None
        answer = json.loads(out)
        return answer["remote"], answer["local"]

    def _run(self, spec: dict) -> tuple[int, str]:
        try:
            proc = subprocess.run([sys.executable, "-m", "tray.ui.dialogs"], input=json.dumps(spec),
                                  capture_output=True, text=True, timeout=3600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("dialog failed: %s", exc)
            return NO_TK, ""
        if proc.returncode not in (0, 1, NO_TK):
            log.warning("dialog failed (%s): %s", proc.returncode, proc.stderr.strip()[-300:])
            return NO_TK, ""
        return proc.returncode, proc.stdout.strip()


def _zenity_confirm(title: str, text: str, ok: str, cancel: str) -> bool:
    if shutil.which("zenity") is None:
        log.warning("no dialog available (tkinter, zenity): proceeding with %r", title)
        return True
    proc = subprocess.run(["zenity", "--question", f"--title={title}", f"--text={text}",
                           f"--ok-label={ok}", f"--cancel-label={cancel}"], check=False)
    return proc.returncode == 0


# ---------------------------------------------------------------- the child
def _window(title: str):  # type: ignore[no-untyped-def]
    import tkinter as tk
    from tkinter import ttk

    root = tk.Tk(className="tender-dialog")
    root.title(title)
    root.resizable(False, False)
    style = ttk.Style(root)
    if "clam" in style.theme_names():
        style.theme_use("clam")
    frame = ttk.Frame(root, padding=16)
    frame.grid(sticky="nsew")
    return root, frame


def _show(root, focus) -> None:  # type: ignore[no-untyped-def]
    """Centre the dialog, wait until it is on screen, focus ``focus()``'s widget, run.

    No window manager may place us or give us focus, so we do both ourselves,
    before the first keystroke can arrive.
    """
    root.update_idletasks()
    w, h = root.winfo_reqwidth(), root.winfo_reqheight()
    x = (root.winfo_screenwidth() - w) // 2
    y = (root.winfo_screenheight() - h) // 3
    root.geometry(f"+{x}+{y}")
    root.attributes("-topmost", True)
    root.wait_visibility()
    root.focus_force()
    focus()
    root.update()
    root.mainloop()


def _buttons(frame, row: int, ok: str, cancel: str, on_ok, on_cancel):  # type: ignore[no-untyped-def]
    from tkinter import ttk

    bar = ttk.Frame(frame)
    bar.grid(row=row, column=0, columnspan=2, sticky="e", pady=(14, 0))
    ttk.Button(bar, text=cancel, command=on_cancel).grid(row=0, column=0, padx=(0, 8))
    ok_button = ttk.Button(bar, text=ok, command=on_ok, default="active")
    ok_button.grid(row=0, column=1)
    return ok_button


def _confirm_child(spec: dict) -> int:
    from tkinter import ttk

    root, frame = _window(spec["title"])
    result = {"code": 1}

    def done(code: int) -> None:
        result["code"] = code
        root.destroy()

    # The question again inside: some panels' dialogs have no title bar.
    ttk.Label(frame, text=spec["title"], font=("TkDefaultFont", 11, "bold")).grid(row=0, column=0, columnspan=2,
                                                                                  sticky="w", pady=(0, 6))
    ttk.Label(frame, text=spec["text"], wraplength=380, justify="left").grid(row=1, column=0, columnspan=2,
                                                                             sticky="w")
    ok_button = _buttons(frame, 2, spec["ok"], spec["cancel"], lambda: done(0), lambda: done(1))
    root.bind("<Return>", lambda e: done(0))
    root.bind("<KP_Enter>", lambda e: done(0))
    root.bind("<Escape>", lambda e: done(1))
    root.protocol("WM_DELETE_WINDOW", lambda: done(1))
    _show(root, ok_button.focus_set)
    return result["code"]


def _port_child(spec: dict) -> int:
    import tkinter as tk
    from tkinter import ttk

    root, frame = _window("Forward a port — Tender")
    ports = [(int(p), n) for p, n in spec["ports"]]
    used = [int(u) for u in spec["used"]]
    result: dict = {"code": 1}

    def row(r: int, label: str, widget) -> None:  # type: ignore[no-untyped-def]
        ttk.Label(frame, text=label).grid(row=r, column=0, sticky="w", padx=(0, 12), pady=3)
        widget.grid(row=r, column=1, sticky="ew", pady=3)

    row(0, "Resource", ttk.Label(frame, text=spec["resource"]))
    row(1, "Cluster", ttk.Label(frame, text=spec["cluster"]))
    remote = tk.StringVar()
    local = tk.StringVar()
    if ports:
        choices = [f"{p} ({n})" if n else str(p) for p, n in ports]
        combo = ttk.Combobox(frame, values=choices, state="readonly", width=24)
        combo.current(0)
        remote.set(str(ports[0][0]))
        row(2, "Container port", combo)

        def picked(_event: object = None) -> None:
            number = str(ports[combo.current()][0])
            if local.get() in ("", remote.get()):  # follow the choice until the user typed a port
                local.set(number)
            remote.set(number)

        combo.bind("<<ComboboxSelected>>", picked)
        first_field = None
    else:
        first_field = ttk.Entry(frame, textvariable=remote, width=26)
        row(2, "Remote port", first_field)
        follow = {"last": ""}

        def typed(*_: object) -> None:
            # The local port follows a numeric remote port until the user sets it apart.
            value = remote.get().strip()
            if local.get() in ("", follow["last"]) and value.isdigit():
                local.set(value)
            follow["last"] = value if value.isdigit() else follow["last"]

        remote.trace_add("write", typed)
    local.set(remote.get())
    local_entry = ttk.Entry(frame, textvariable=local, width=26)
    row(3, "Local port", local_entry)
    error = ttk.Label(frame, text="", foreground="#b91c1c", wraplength=320)
    error.grid(row=4, column=0, columnspan=2, sticky="w")

    def ok() -> None:
        answer = validate_port_form(remote.get(), local.get(), used)
        if isinstance(answer, str):
            error.configure(text=answer)
            return
        result.update(code=0, remote=answer[0], local=answer[1])
        root.destroy()

    def cancel() -> None:
        root.destroy()

    _buttons(frame, 5, "Forward", "Cancel", ok, cancel)
    root.bind("<Return>", lambda e: ok())
    root.bind("<KP_Enter>", lambda e: ok())
    root.bind("<Escape>", lambda e: cancel())
    root.protocol("WM_DELETE_WINDOW", cancel)

    def focus_local() -> None:
        if first_field is not None:  # nothing declared: the remote port comes first
            first_field.focus_set()
            return
        local_entry.focus_set()
        local_entry.select_range(0, "end")  # typing replaces the suggested port

    _show(root, focus_local)
    if result["code"] == 0:
        print(json.dumps({"remote": result["remote"], "local": result["local"]}))
    return result["code"]


def main() -> int:
    spec = json.loads(sys.stdin.read())
    try:
        import tkinter
    except ImportError:
        return NO_TK
    try:
        return _confirm_child(spec) if spec["kind"] == "confirm" else _port_child(spec)
    except tkinter.TclError as exc:  # no display, or Tk cannot start
        print(f"tkinter: {exc}", file=sys.stderr)
        return NO_TK


if __name__ == "__main__":
    raise SystemExit(main())
