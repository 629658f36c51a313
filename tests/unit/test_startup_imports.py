"""What ``tender run`` imports before its first forward is active (issue 16: start-up ≤ 0.4 s).

The start-up path (the CLI's parser, the engine, reading the profiles file) must not pay for
what only other features use: ruamel.yaml (writing profiles), aiohttp and the ``kubernetes``
package (exec and OIDC credentials), D-Bus, Pillow and pystray (the tray).  A fresh interpreter
each time, so what other tests imported does not count.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Imported only by the features that need them, never on `tender run`'s way to its first forward.
NOT_AT_START_UP = ("ruamel", "aiohttp", "kubernetes", "dbus_fast", "PIL", "pystray", "gi")

PROFILES = """version: 1
profiles:
  - name: web
    context: tender-a
    namespace: demo
    target: deploy/web
    ports: ["18080:8080"]
"""

# What tray.cli.main and _run_profiles import, in their order, up to the first start.
RUN_PATH = """
import sys
import tray.cli
tray.cli._parser()
from tray.engine.manager import ForwardManager
from tray.profiles import load_profiles
load_profiles(sys.argv[1])
import tray.kube.kubeapi, tray.kube.spdyconn, tray.engine.dialer
print(" ".join(sorted(sys.modules)))
"""


def _modules_after(code: str, tmp_path: Path) -> set[str]:
    path = tmp_path / "profiles.yaml"
    path.write_text(PROFILES)
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    return set(out.split())


def test_the_run_path_imports_no_writer_tray_or_plugin_library(tmp_path: Path) -> None:
    modules = _modules_after(RUN_PATH, tmp_path)
    assert "tray.engine.manager" in modules and "tray.profiles.reader" in modules  # the path did run
    loaded = sorted(m for m in modules if m.split(".")[0] in NOT_AT_START_UP)
    assert loaded == [], f"imported on tender run's start-up path: {loaded}"


def test_the_profiles_writer_still_loads_on_first_use(tmp_path: Path) -> None:
    code = RUN_PATH.replace('print(', 'from tray.profiles import save_profiles, add_profile\nprint(')
    modules = _modules_after(code, tmp_path)
    assert "tray.profiles.writer" in modules and "ruamel.yaml" in modules
