"""Small dialogs: "Stop & Quit?", "Stop all in this cluster?", "Custom port…" and "Search…".

Native where the desktop offers a dialog tool: ``kdialog`` on KDE, else
``zenity`` (GNOME, XFCE, Cinnamon, MATE...), whichever is on PATH
(:func:`pick_tool`); otherwise Tk, in a child process (``python -m
tray.ui.dialogs``) so Tk never shares a process with the tray's main loop.
Either way a dialog is a child process that the controller waits for on a
worker thread: a dialog never blocks the tray.  With no tool and no
tkinter, a confirmation counts as "yes" (the user did click the item) and a
question cannot be asked (logged; ``None``).

The port dialog pre-fills a *free* local port (:func:`free_local_port`: not
held by another forward, and bindable on 127.0.0.1 right now).  With zenity
or kdialog it is one line in the menu's notation, ``LOCAL → REMOTE``
(kubectl's ``LOCAL:REMOTE`` is read too; :func:`parse_port_answer`);
Tk shows two fields.  A wrong answer asks again, saying what is wrong.

The command lines are built by pure functions (:func:`confirm_command`,
:func:`entry_command`), unit-tested with ``which`` and ``env`` as
arguments.  The controller takes any object with ``confirm``, ``ask_port``
and ``ask_text``, so tests can answer without a display.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from tray.domain.portspec import is_port_name
from tray.ui.labels import ARROW, port_pair

log = logging.getLogger(__name__)

NO_TK = 3  # the child's exit code when tkinter is missing
#: Seconds a dialog may stay open before it counts as cancelled.
DIALOG_TIMEOUT = 3600
#: Local ports tried after the one asked for, before letting the system pick one.
PORT_TRIES = 50


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


_SEPARATOR = re.compile(r"→|->|:")


def parse_port_answer(text: str, used: Sequence[int]) -> tuple[int | str, int] | str:
    """(remote, local) from one line, or the one-line problem to show.

    ``"8081 → 8080"`` (the menu's notation), ``"8081:8080"`` or
    ``"8081 -> http"``: local first.  A lone number ``"8080"`` is
    8080 → 8080, as kubectl reads it.
    """
    text = text.strip()
    example = f"LOCAL {ARROW} REMOTE, e.g. 8081 {ARROW} 8080"
    if not text:
        return f"Enter the ports as {example}."
    parts = [p.strip() for p in _SEPARATOR.split(text)]
    if len(parts) == 1 and parts[0].isdigit():
        parts = [parts[0], parts[0]]
    if len(parts) != 2:
        return f"“{text}” is not {example}."
    local, remote = parts
    if not remote:
        return f"Enter the remote port after the {ARROW} (a number or a port name)."
    return validate_port_form(remote, local, used)


def can_bind(port: int, host: str = "127.0.0.1") -> bool:
    """True if a listener could bind ``host``:``port`` now (a bind that is closed at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_local_port(preferred: int, used: Sequence[int] = (), bindable: Callable[[int], bool] = can_bind) -> int:
    """A local port for a forward of remote port ``preferred``: that one when it is free.

    Free: not in ``used`` (the ports other forwards hold, as the menu said)
    and ``bindable`` (default: a bind on 127.0.0.1 succeeds).  Else, for a
    port below 1024, ``preferred + 8000`` (80 → 8080, 443 → 8443); then the
    next :data:`PORT_TRIES` ports up; then one the system picks.  Blocks
    for one bind per try (microseconds).
    """
    candidates: list[int] = []
    if 1 <= preferred <= 65535:
        candidates.append(preferred)
        if preferred < 1024:
            candidates.append(preferred + 8000)
        start = candidates[-1]
        candidates += [p for p in range(start + 1, min(start + 1 + PORT_TRIES, 65536))]
    for port in candidates:
        if port not in used and bindable(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def suggested_ports(request: PortRequest, bindable: Callable[[int], bool] = can_bind) -> tuple[int | str, int]:
    """(remote, local) to pre-fill: the first declared port (by name if it has one) and a free local port.

    Nothing declared: no remote port (``""``) and a free port from 8080 up.
    """
    if request.ports:
        port, name = request.ports[0]
        return (name or port), free_local_port(port, request.used, bindable)
    return "", free_local_port(8080, request.used, bindable)


# ---------------------------------------------------------------- native tools (pure command lines)
def pick_tool(env: Mapping[str, str], which: Callable[[str], str | None] = shutil.which) -> str | None:
    """``"kdialog"`` on KDE, else ``"zenity"``, else ``"kdialog"`` -- the first on PATH; ``None``: use Tk.

    KDE is told by ``XDG_CURRENT_DESKTOP`` (a ``:``-separated list) naming
    ``KDE``.  ``TENDER_DIALOGS=tk`` forces Tk.
    """
    if env.get("TENDER_DIALOGS", "").lower() == "tk":
        return None
    desktops = {d.strip().upper() for d in env.get("XDG_CURRENT_DESKTOP", "").split(":")}
    order = ("kdialog", "zenity") if "KDE" in desktops else ("zenity", "kdialog")
    return next((tool for tool in order if which(tool)), None)


def confirm_command(tool: str, title: str, text: str, ok: str, cancel: str) -> list[str]:
    """The yes/no question's command line; exit status 0 means ``ok``."""
    if tool == "kdialog":
        return ["kdialog", "--title", title, "--yes-label", ok, "--no-label", cancel, "--yesno", text]
    return ["zenity", "--question", f"--title={title}", f"--text={_markup(text)}", f"--ok-label={ok}",
            f"--cancel-label={cancel}", "--width=380"]


def entry_command(tool: str, title: str, prompt: str, initial: str = "") -> list[str]:
    """A one-line question's command line; the answer is printed on stdout, exit status 1 is Cancel."""
    if tool == "kdialog":
        return ["kdialog", "--title", title, "--inputbox", prompt, initial]
    return ["zenity", "--entry", f"--title={title}", f"--text={_markup(prompt)}", f"--entry-text={initial}",
            "--width=420"]


def _markup(text: str) -> str:
    """zenity reads Pango markup: a literal ``<`` or ``&`` must be escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


PORT_TITLE = "Forward a port — Tender"


def port_prompt(request: PortRequest, problem: str | None = None) -> str:
    """The port question's text: what is forwarded, the declared ports, the notation; ``problem`` first."""
    declared = ", ".join(f"{p} ({n})" if n else str(p) for p, n in request.ports) or "none"
    lines = [f"⚠ {problem}", ""] if problem else []
    lines += [f"{request.resource} in {request.cluster}", f"Declared ports: {declared}", "",
              f"Local port {ARROW} remote port:"]
    return "\n".join(lines)


def _utf8(env: Mapping[str, str]) -> bool:
    """True if the locale ``env`` sets has UTF-8 characters (LC_ALL, else LC_CTYPE, else LANG)."""
    ctype = env.get("LC_ALL") or env.get("LC_CTYPE") or env.get("LANG") or ""
    return "utf-8" in ctype.lower() or "utf8" in ctype.lower()


class Dialogs:
    """The real dialogs (each call blocks its worker thread until answered).

    ``env`` (default ``os.environ``) and ``which`` choose the tool
    (:func:`pick_tool`); ``run`` is :func:`subprocess.run`'s stand-in.
    """

    def __init__(self, env: Mapping[str, str] | None = None, which: Callable[[str], str | None] = shutil.which,
                 run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
                 bindable: Callable[[int], bool] = can_bind) -> None:
        self.env = dict(os.environ if env is None else env)
        self.which = which
        self.run = run
        self.bindable = bindable

    @property
    def tool(self) -> str | None:
        return pick_tool(self.env, self.which)

    def confirm(self, title: str, text: str, ok: str, cancel: str = "Cancel") -> bool:
        """True if the user chose ``ok``; blocks until answered."""
        tool = self.tool
        if tool is not None:
            code, _ = self._tool(confirm_command(tool, title, text, ok, cancel))
            if code in (0, 1):
                return code == 0
        code, _ = self._child({"kind": "confirm", "title": title, "text": text, "ok": ok, "cancel": cancel})
        if code == NO_TK:
            log.warning("no dialog available (zenity, kdialog, tkinter): proceeding with %r", title)
            return True
        return code == 0

    def ask_text(self, title: str, prompt: str, initial: str = "") -> str | None:
        """The line typed (stripped), or ``None`` if cancelled, empty or no dialog could be shown."""
        tool = self.tool
        if tool is not None:
            code, out = self._tool(entry_command(tool, title, prompt, initial))
            if code in (0, 1):
                return out.strip() or None if code == 0 else None
        code, out = self._child({"kind": "text", "title": title, "prompt": prompt, "initial": initial})
        if code == NO_TK:
            log.warning("cannot ask %r: no dialog available (zenity, kdialog, tkinter)", title)
            return None
        return json.loads(out)["text"].strip() or None if code == 0 and out else None

    def ask_port(self, request: PortRequest) -> tuple[int | str, int] | None:
        """(remote port or name, local port), or ``None`` if cancelled; asks again until the answer is valid."""
        remote, local = suggested_ports(request, self.bindable)
        tool = self.tool
        if tool is not None:
            answer, problem = (port_pair(local, remote) if remote != "" else f"{local} {ARROW} "), None
            while True:
                code, out = self._tool(entry_command(tool, PORT_TITLE, port_prompt(request, problem), answer))
                if code not in (0, 1):
                    break  # the tool failed: try Tk
                if code == 1:
                    return None
                answer = out.strip()
                parsed = parse_port_answer(answer, request.used)
                if not isinstance(parsed, str):
                    return parsed
                problem = parsed
        code, out = self._child({"kind": "port", "resource": request.resource, "cluster": request.cluster,
                                 "ports": [list(p) for p in request.ports], "used": list(request.used),
                                 "local": local})
        if code == NO_TK:
            log.warning("cannot ask for a port: no dialog available (zenity, kdialog, tkinter)")
            return None
        if code != 0 or not out:
            return None
        answer = json.loads(out)
        return answer["remote"], answer["local"]

    def _tool(self, argv: list[str]) -> tuple[int, str]:
        """Run a dialog tool: (exit status, stdout); -1 if it could not run."""
        env = {**self.env, "NO_AT_BRIDGE": "1"}  # no accessibility-bus warnings or waits
        if not _utf8(env):
            env["LC_ALL"] = "C.UTF-8"  # zenity refuses an argument it cannot decode ("→" in the C locale)
        try:
            proc = self.run(argv, env=env, capture_output=True, text=True, timeout=DIALOG_TIMEOUT)
        except subprocess.TimeoutExpired:
            return 1, ""
        except OSError as exc:
            log.warning("%s failed: %s", argv[0], exc)
            return -1, ""
        if proc.returncode not in (0, 1):
            log.warning("%s failed (%s): %s", argv[0], proc.returncode, (proc.stderr or "").strip()[-300:])
        return proc.returncode, proc.stdout or ""

    def _child(self, spec: dict) -> tuple[int, str]:
        try:
            proc = self.run([sys.executable, "-m", "tray.ui.dialogs"], input=json.dumps(spec), env=self.env,
                            capture_output=True, text=True, timeout=DIALOG_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("dialog failed: %s", exc)
            return NO_TK, ""
        if proc.returncode not in (0, 1, NO_TK):
            log.warning("dialog failed (%s): %s", proc.returncode, proc.stderr.strip()[-300:])
            return NO_TK, ""
        return proc.returncode, proc.stdout.strip()


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
    """The Cancel and OK buttons at ``row``, with Return/keypad Enter for OK and Escape or closing the
    window for Cancel; returns the OK button."""
    from tkinter import ttk

    root = frame.winfo_toplevel()
    root.bind("<Return>", lambda e: on_ok())
    root.bind("<KP_Enter>", lambda e: on_ok())
    root.bind("<Escape>", lambda e: on_cancel())
    root.protocol("WM_DELETE_WINDOW", on_cancel)
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
    _show(root, ok_button.focus_set)
    return result["code"]


def _port_child(spec: dict) -> int:
    import tkinter as tk
    from tkinter import ttk

    root, frame = _window(PORT_TITLE)
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

        suggested = {"local": str(spec.get("local") or ports[0][0])}

        def picked(_event: object = None) -> None:
            number = ports[combo.current()][0]
            if local.get() in ("", suggested["local"]):  # follow the choice until the user typed a port
                suggested["local"] = str(free_local_port(number, used))
                local.set(suggested["local"])
            remote.set(str(number))

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
    local.set(str(spec.get("local") or remote.get()))
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


def _text_child(spec: dict) -> int:
    import tkinter as tk
    from tkinter import ttk

    root, frame = _window(spec["title"])
    result: dict = {"code": 1}
    ttk.Label(frame, text=spec["prompt"], wraplength=380, justify="left").grid(row=0, column=0, columnspan=2,
                                                                               sticky="w", pady=(0, 6))
    text = tk.StringVar(value=spec.get("initial", ""))
    entry = ttk.Entry(frame, textvariable=text, width=40)
    entry.grid(row=1, column=0, columnspan=2, sticky="ew")

    def ok() -> None:
        result.update(code=0, text=text.get())
        root.destroy()

    def cancel() -> None:
        root.destroy()

    _buttons(frame, 2, "OK", "Cancel", ok, cancel)

    def focus() -> None:
        entry.focus_set()
        entry.select_range(0, "end")

    _show(root, focus)
    if result["code"] == 0:
        print(json.dumps({"text": result["text"]}))
    return result["code"]


def main() -> int:
    spec = json.loads(sys.stdin.read())
    try:
        import tkinter
    except ImportError:
        return NO_TK
    children = {"confirm": _confirm_child, "port": _port_child, "text": _text_child}
    try:
        return children[spec["kind"]](spec)
    except tkinter.TclError as exc:  # no display, or Tk cannot start
        print(f"tkinter: {exc}", file=sys.stderr)
        return NO_TK


if __name__ == "__main__":
    raise SystemExit(main())
