"""The dialogs: which tool, its command lines, the free port pre-filled, asking again; real zenity on Xvfb."""

from __future__ import annotations

import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tray.ui.dialogs import (NO_TK, PORT_TITLE, Dialogs, PortRequest, confirm_command, entry_command,
                             free_local_port, parse_port_answer, pick_tool, port_prompt)


def which(*names: str):  # noqa: ANN201
    return lambda n: f"/usr/bin/{n}" if n in names else None


def test_the_desktops_own_tool_is_picked_then_tk() -> None:
    assert pick_tool({"XDG_CURRENT_DESKTOP": "KDE"}, which("zenity", "kdialog")) == "kdialog"
    assert pick_tool({"XDG_CURRENT_DESKTOP": "ubuntu:GNOME"}, which("zenity", "kdialog")) == "zenity"
    assert pick_tool({"XDG_CURRENT_DESKTOP": "XFCE"}, which("zenity")) == "zenity"
    assert pick_tool({"XDG_CURRENT_DESKTOP": "KDE"}, which("zenity")) == "zenity"
    assert pick_tool({}, which("kdialog")) == "kdialog"
    assert pick_tool({}, which()) is None  # Tk
    assert pick_tool({"TENDER_DIALOGS": "tk"}, which("zenity")) is None


def test_command_lines() -> None:
    assert confirm_command("zenity", "Quit Tender?", "2 forwards <running>", "Stop & Quit", "Cancel") == [
        "zenity", "--question", "--title=Quit Tender?", "--text=2 forwards &lt;running&gt;",
        "--ok-label=Stop & Quit", "--cancel-label=Cancel", "--width=380"]
    assert confirm_command("kdialog", "Quit Tender?", "2 forwards", "Stop & Quit", "Cancel") == [
        "kdialog", "--title", "Quit Tender?", "--yes-label", "Stop & Quit", "--no-label", "Cancel",
        "--yesno", "2 forwards"]
    assert entry_command("zenity", "Search", "Name contains:", "web") == [
        "zenity", "--entry", "--title=Search", "--text=Name contains:", "--entry-text=web", "--width=420"]
    assert entry_command("kdialog", "Search", "Name contains:") == ["kdialog", "--title", "Search", "--inputbox",
                                                                    "Name contains:", ""]


def test_port_answers_in_the_menus_notation_or_kubectls() -> None:
    assert parse_port_answer("8081 → 8080", []) == (8080, 8081)
    assert parse_port_answer("8081:http", []) == ("http", 8081)
    assert parse_port_answer(" 8081 -> 80 ", []) == (80, 8081)
    assert parse_port_answer("9000", []) == (9000, 9000)  # as kubectl reads it
    assert parse_port_answer("8080 → 80", [8080]) == "Local port 8080 is used by another forward."
    assert parse_port_answer("", []).startswith("Enter the ports as LOCAL → REMOTE")
    assert "is not LOCAL → REMOTE" in parse_port_answer("1 → 2 → 3", [])
    assert "is not LOCAL → REMOTE" in parse_port_answer("web", [])
    assert parse_port_answer("8080 → ", []).startswith("Enter the remote port after the →")
    assert "neither a port number nor a port name" in parse_port_answer("8080 → no_such", [])


def test_the_free_local_port_skips_ports_in_use_and_taken() -> None:
    taken = {8081}
    bindable = lambda port: port not in taken  # noqa: E731
    assert free_local_port(8080, used=[], bindable=bindable) == 8080
    assert free_local_port(8080, used=[8080], bindable=bindable) == 8082  # 8080 held by a forward, 8081 by another program
    assert free_local_port(80, used=[], bindable=lambda p: p >= 1024) == 8080  # privileged: 80 → 8080
    assert free_local_port(443, used=[8443], bindable=lambda p: p >= 1024) == 8444
    assert 1024 <= free_local_port(8080, used=[], bindable=lambda p: False) <= 65535  # the system's pick


def test_a_port_another_program_listens_on_is_not_offered() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert free_local_port(port) != port


class Script:
    """Stands in for subprocess.run: answers each command from a list, records what was run."""

    def __init__(self, *answers: tuple[int, str]) -> None:
        self.answers = list(answers)
        self.argv: list[list[str]] = []

    def __call__(self, argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        self.argv.append(argv)
        code, out = self.answers.pop(0)
        return subprocess.CompletedProcess(argv, code, out, "")


def test_the_port_dialog_prefills_a_free_port_and_asks_again_with_the_problem() -> None:
    run = Script((0, "8080 → http\n"), (0, "18080 → http\n"))
    dialogs = Dialogs(env={}, which=which("zenity"), run=run, bindable=lambda p: True)
    request = PortRequest("deploy/web", "tender-a / demo", ((8080, "http"), (9100, None)), used=(8080,))
    assert dialogs.ask_port(request) == ("http", 18080)
    first, second = run.argv
    assert first[:3] == ["zenity", "--entry", f"--title={PORT_TITLE}"]
    assert "--entry-text=8081 → http" in first  # 8080 is held by another forward: the next free one
    assert "Declared ports: 8080 (http), 9100" in first[3]
    # asked again, saying why, with what was typed
    assert second[3] == f"--text={port_prompt(request, 'Local port 8080 is used by another forward.')}"
    assert second[3].startswith("--text=⚠ Local port 8080 is used by another forward.")
    assert "--entry-text=8080 → http" in second


def test_cancel_and_no_tool_at_all() -> None:
    request = PortRequest("svc/db", "tender-a / demo", ())
    assert Dialogs(env={}, which=which("kdialog"), run=Script((1, "")), bindable=lambda p: True).ask_port(request) is None
    run = Script((0, "8080 → \n"), (0, "15432 → 5432\n"))
    assert Dialogs(env={}, which=which("kdialog"), run=run, bindable=lambda p: True).ask_port(request) == (5432, 15432)
    assert run.argv[0][-1] == "8080 → "  # nothing declared: the local port only
    # no zenity, no kdialog, no tkinter: a question is not asked, a confirmation is a yes
    none = Dialogs(env={}, which=which(), run=Script((NO_TK, ""), (NO_TK, ""), (NO_TK, "")))
    assert none.ask_text("Search", "Name contains:") is None
    assert none.ask_port(request) is None
    assert none.confirm("Quit Tender?", "1 forward running.", "Stop & Quit") is True
    # kdialog's answers
    k = Dialogs(env={}, which=which("kdialog"), run=Script((0, ""), (1, ""), (0, " web \n"), (0, "  \n")))
    assert k.confirm("Quit?", "x", "Quit") is True
    assert k.confirm("Quit?", "x", "Quit") is False
    assert k.ask_text("Search", "Name contains:") == "web"
    assert k.ask_text("Search", "Name contains:") is None  # nothing typed


# ---------------------------------------------------------------- real zenity on Xvfb, typed into with xdotool
def taken_displays() -> set[int]:
    """Display numbers some X server holds: a lock file, or a socket -- on disk or abstract.

    Xvfb's ``-displayfd`` only looks at lock files, so on a machine where
    other X servers run in their own /tmp (a sandbox), it can pick a number
    whose abstract socket belongs to one of them, and clients connect there.
    """
    taken = {int(m) for m in re.findall(r"/tmp/\.X11-unix/X(\d+)", Path("/proc/net/unix").read_text())}
    taken |= {int(m) for f in Path("/tmp").glob(".X*-lock") for m in re.findall(r"\.X(\d+)-lock", f.name)}
    return taken


@pytest.fixture(scope="module")
def display(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    missing = [t for t in ("Xvfb", "xdpyinfo", "xdotool", "zenity") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    home = tmp_path_factory.mktemp("home")
    for _ in range(5):
        number = random.choice([n for n in range(100, 1000) if n not in taken_displays()])
        xvfb = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while xvfb.poll() is None and time.monotonic() < deadline:
            if subprocess.run(["xdpyinfo", "-display", f":{number}"], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        if xvfb.poll() is None:
            break
    else:
        pytest.fail("Xvfb did not start")
    try:
        yield {"DISPLAY": f":{number}", "HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "XDG_CONFIG_HOME": str(Path(home) / ".config"), "XDG_CURRENT_DESKTOP": "XFCE"}
    finally:
        xvfb.terminate()
        xvfb.wait(10)


def answer(env: dict[str, str], title: str, typed: str | None) -> None:
    """Wait for the dialog ``title``, focus it, type ``typed`` (replacing the pre-filled text), press Return.

    ``typed`` must be on the keyboard map (ASCII): xdotool types any other character by mapping it
    to a spare keycode for the moment of the key press, and a client busy enough to read the map
    after it is put back gets no character ("18081 → 8080" arrives as "18081  8080").
    """
    assert typed is None or typed.isascii(), typed

    def xdotool(*args: str) -> str:
        # a UTF-8 locale: xdotool cannot read a window name with "—" in the C locale
        return subprocess.run(["xdotool", *args], env={**env, "LC_ALL": "C.UTF-8"}, capture_output=True, text=True,
                              timeout=20).stdout

    deadline = time.monotonic() + 60
    while not (windows := xdotool("search", "--onlyvisible", "--name", title).split()):
        if time.monotonic() > deadline:
            names = [xdotool("getwindowname", w).strip() for w in xdotool("search", "--name", ".").split()]
            info = subprocess.run(["xdpyinfo"], env=env, capture_output=True, text=True)
            ps = subprocess.run(["ps", "-ef"], capture_output=True, text=True).stdout
            zen = [line for line in ps.splitlines() if "zenity" in line or "Xvfb" in line]
            raise AssertionError(f"no window {title!r} among {names}; xdpyinfo {info.returncode} {info.stderr[-200:]}; {zen}")
        time.sleep(0.1)
    time.sleep(0.5)  # mapped is not yet drawn and focusable
    xdotool("windowfocus", "--sync", windows[0])
    if typed is not None:
        xdotool("type", "--delay", "30", typed)
    xdotool("key", "Return")


def answered(thread: threading.Thread, result: dict) -> object:
    """The dialog call's return value, once its thread ends (generous: zenity may be slow to exit under load)."""
    thread.join(60)
    assert not thread.is_alive(), "the dialog call did not return within 60 s"
    return result["value"]


def ask(fn, *args):  # noqa: ANN001, ANN201
    """Run a blocking dialog call on a thread (as the controller's worker does)."""
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(value=fn(*args)), daemon=True)
    thread.start()
    return thread, result


class Recorder:
    """subprocess.run, recording the tools run and their exit status (so Tk standing in would show)."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, int]] = []

    def __call__(self, argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(argv, **kwargs)  # type: ignore[call-overload]
        self.runs.append((Path(argv[0]).name, proc.returncode))
        return proc


def test_real_zenity_asks_for_text(display: dict[str, str]) -> None:
    run = Recorder()
    dialogs = Dialogs(env=display, run=run)  # no LANG: the C locale, as at login on some systems
    assert dialogs.tool == "zenity"
    thread, result = ask(dialogs.ask_text, "Search tender-a — Tender", "Pods, services and workloads whose name contains:")
    answer(display, "Search tender-a", "web-api")
    assert answered(thread, result) == "web-api"
    assert run.runs == [("zenity", 0)]


def test_real_zenity_port_dialog_prefills_a_free_port_and_asks_again(display: dict[str, str]) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        busy = listener.getsockname()[1]
        run = Recorder()
        dialogs = Dialogs(env={**display, "LANG": "C.UTF-8"}, run=run)
        request = PortRequest("deploy/web", "tender-a / demo", ((busy, "http"),))
        # Return on the pre-filled line: the free port next to the busy one, by the port's name
        thread, result = ask(dialogs.ask_port, request)
        answer(display, "Forward a port", None)
        remote, local = answered(thread, result)
        assert remote == "http" and local != busy and free_local_port(local) == local
        # a wrong answer asks again; the second answer counts
        thread, result = ask(dialogs.ask_port, PortRequest("deploy/web", "tender-a / demo", ((8080, "http"),),
                                                           used=(18080,)))
        answer(display, "Forward a port", "18080:8080")
        # Once the first dialog's zenity has exited, a dialog with that title is the second one (its window
        # may well have the first one's id: the X server reuses a closed client's ids).
        deadline = time.monotonic() + 60
        while len(run.runs) < 2:
            assert time.monotonic() < deadline, f"the first dialog is still open: {run.runs}"
            time.sleep(0.05)
        assert thread.is_alive()  # asked again: 18080 is used by another forward
        answer(display, "Forward a port", "18081 -> 8080")  # ASCII, as typed on a keyboard
        assert answered(thread, result) == (8080, 18081)
        assert run.runs == [("zenity", 0)] * 3


def test_tk_when_there_is_no_tool(display: dict[str, str]) -> None:
    """TENDER_DIALOGS=tk (or neither zenity nor kdialog): the Tk child asks, with the same free port pre-filled."""
    run = Recorder()
    env = {**display, "TENDER_DIALOGS": "tk", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    dialogs = Dialogs(env=env, run=run)
    assert dialogs.tool is None
    thread, result = ask(dialogs.ask_text, "Search tender-a — Tender", "Pods, services and workloads whose name contains:")
    answer(display, "Search tender-a", "db")
    assert answered(thread, result) == "db"
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        busy = listener.getsockname()[1]
        thread, result = ask(dialogs.ask_port, PortRequest("deploy/web", "tender-a / demo", ((busy, "http"),)))
        answer(display, "Forward a port", None)  # Return: the pre-filled ports
        remote, local = answered(thread, result)
    assert remote == busy and local != busy and free_local_port(local) == local
    assert [name for name, _ in run.runs] == [Path(sys.executable).name] * 2
