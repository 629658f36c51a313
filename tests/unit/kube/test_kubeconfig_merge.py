"""kubectl's kubeconfig merge rule (client-go ``ClientConfigLoadingRules.Load``), on plain files.

``KUBECONFIG=a:b``: the first file that sets current-context wins; clusters,
contexts and users are combined by name, the first file's entry whole;
relative paths resolve against the file that holds them; missing files are
skipped.  Both the context list and the credentials Tender loads come from
that one merge.  Nothing is contacted (the servers are never dialled).
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
import yaml

from tray.errors import UsageError
from tray.kube.kubeconfig import (default_context, list_clusters, load_auth, load_kubeconfig, merge_kubeconfigs,
                             no_context_message)

DATA = Path(__file__).resolve().parents[2] / "data" / "kubeconfig"
CA = DATA / "ca.crt"
KEY = DATA / "ca.key"


def kc(path: Path, *, current: str | None = None, clusters=(), users=(), contexts=(), **extra) -> Path:
    """Write a kubeconfig. clusters/users: (name, body); contexts: (name, cluster, user[, namespace])."""
    doc: dict = {"apiVersion": "v1", "kind": "Config", **extra}
    if current is not None:
        doc["current-context"] = current
    if clusters:
        doc["clusters"] = [{"name": n, "cluster": b} for n, b in clusters]
    if users:
        doc["users"] = [{"name": n, "user": b} for n, b in users]
    if contexts:
        doc["contexts"] = [{"name": c[0], "context": {"cluster": c[1], "user": c[2],
                                                       **({"namespace": c[3]} if len(c) > 3 else {})}}
                           for c in contexts]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


def joined(*paths: Path | str) -> str:
    return os.pathsep.join(str(p) for p in paths)


def server(n: int) -> dict:
    return {"server": f"https://127.0.0.1:{n}", "certificate-authority": str(CA)}


def one_line(err: pytest.ExceptionInfo[UsageError], *fragments: str) -> str:
    text = str(err.value)
    assert "\n" not in text, text
    for f in fragments:
        assert f in text, (f, text)
    return text


@pytest.fixture
def staging_prod(tmp_path: Path) -> tuple[Path, Path]:
    """a.yaml: current-context staging; b.yaml: current-context prod."""
    a = kc(tmp_path / "a.yaml", current="staging", clusters=[("s", server(1))], users=[("u", {"token": "a"})],
           contexts=[("staging", "s", "u")])
    b = kc(tmp_path / "b.yaml", current="prod", clusters=[("p", server(2))], users=[("u", {"token": "b"})],
           contexts=[("prod", "p", "u")])
    return a, b


# ---------------------------------------------------------------- current-context
def test_the_first_file_that_sets_current_context_wins(staging_prod: tuple[Path, Path]):
    a, b = staging_prod
    assert [(c.id, c.current) for c in list_clusters(joined(a, b))] == [("staging", True), ("prod", False)]
    assert [(c.id, c.current) for c in list_clusters(joined(b, a))] == [("prod", True), ("staging", False)]
    assert default_context(joined(a, b)) == "staging"
    # The credentials follow the same merge: both files define user "u".
    assert load_auth("prod", joined(a, b)).snapshot()[0] == {"Authorization": "Bearer a"}


def test_a_file_without_current_context_does_not_hide_a_later_one(tmp_path: Path, staging_prod):
    a, b = staging_prod
    none = kc(tmp_path / "none.yaml", clusters=[("n", server(3))], contexts=[("other", "n", "u")])
    empty = kc(tmp_path / "empty.yaml", current="")  # "" is not set (client-go merges non-empty values only)
    assert default_context(joined(none, empty, b, a)) == "prod"


def test_a_dangling_current_context_in_a_later_file_is_ignored(tmp_path: Path, staging_prod):
    a, _ = staging_prod
    dangling = kc(tmp_path / "d.yaml", current="gone", clusters=[("x", server(4))], contexts=[("x", "x", "u")])
    assert default_context(joined(a, dangling)) == "staging"
    # First, it wins, and names no context: say so, and what to pass.
    with pytest.raises(UsageError) as err:
        default_context(joined(dangling, a))
    one_line(err, 'current-context "gone"', str(dangling), "--context NAME", "contexts: x, staging")
    assert not any(c.current for c in list_clusters(joined(dangling, a)))


def test_no_current_context_is_accepted_and_the_hint_lists_contexts(tmp_path: Path):
    path = kc(tmp_path / "k.yaml", clusters=[("c", server(5))], users=[("u", {"token": "t"})],
              contexts=[("one", "c", "u"), ("two", "c", "u", "ns2")])
    infos = list_clusters(str(path))
    assert [(c.id, c.current, c.namespace) for c in infos] == [("one", False, "default"), ("two", False, "ns2")]
    assert load_auth("two", str(path)).server == "https://127.0.0.1:5"
    with pytest.raises(UsageError) as err:
        default_context(str(path))
    one_line(err, "sets no current-context", "pass --context NAME (contexts: one, two)")
    assert err.value.field == "--context"
    # A profile has another remedy.
    assert no_context_message(load_kubeconfig(str(path)), "set context: NAME") == (
        "the kubeconfig sets no current-context; set context: NAME (contexts: one, two)")


# ---------------------------------------------------------------- entries
@pytest.mark.parametrize("section", ["clusters", "users", "contexts"])
def test_a_name_in_two_files_takes_the_first_files_entry_whole(section: str):
    key = section[:-1]
    first = {"apiVersion": "v1", section: [{"name": "x", key: {"server": "https://first", "token": "first"}}]}
    second = {section: [{"name": "x", key: {"server": "https://second", "token": "second",
                                            "insecure-skip-tls-verify": True, "namespace": "n"}},
                        {"name": "y", key: {"server": "https://y"}}]}
    merged = merge_kubeconfigs([("/k/a", first), ("/k/b", second)])
    # Never a field-by-field mix: nothing of the second "x" (not even fields the first lacks).
    assert merged[section] == [{"name": "x", key: {"server": "https://first", "token": "first"}},
                               {"name": "y", key: {"server": "https://y"}}]


def test_contexts_clusters_and_users_combine_across_files(tmp_path: Path):
    a = kc(tmp_path / "a", clusters=[("ca", server(1))], users=[("ua", {"token": "ta"})],
           contexts=[("a", "ca", "ub")])
    b = kc(tmp_path / "b", clusters=[("cb", server(2))], users=[("ub", {"token": "tb"})],
           contexts=[("b", "cb", "ua")])
    assert [c.id for c in list_clusters(joined(a, b))] == ["a", "b"]
    # A context in one file may use a user (and a cluster) from another.
    assert load_auth("a", joined(a, b)).snapshot()[0] == {"Authorization": "Bearer tb"}
    assert load_auth("b", joined(a, b)).server == "https://127.0.0.1:2"


def test_preferences_and_extensions_are_ignored():
    doc = {"preferences": {"colors": True}, "extensions": [{"name": "e", "extension": {}}],
           "current-context": "c", "contexts": [{"name": "c", "context": {"cluster": "x"}}]}
    merged = merge_kubeconfigs([("/k/a", doc), ("/k/b", {"preferences": {"colors": False}})])
    assert merged == {"apiVersion": "v1", "kind": "Config", "current-context": "c", "clusters": [], "users": [],
                      "contexts": [{"name": "c", "context": {"cluster": "x"}}]}


def test_merging_does_not_change_its_input():
    doc = {"users": [{"name": "u", "user": {"tokenFile": "t"}}]}
    merge_kubeconfigs([("/k/a", doc)])
    assert doc == {"users": [{"name": "u", "user": {"tokenFile": "t"}}]}


# ---------------------------------------------------------------- relative paths
def test_relative_paths_resolve_against_the_file_that_holds_them():
    a = {"clusters": [{"name": "c", "cluster": {"certificate-authority": "pki/ca.crt",
                                               "certificate-authority-data": "keep"}}],
         "users": [{"name": "u", "user": {"client-certificate": "u.crt", "client-key": "./keys/../u.key",
                                          "tokenFile": "token", "exec": {"command": "./bin/plugin",
                                                                         "args": ["rel/arg"]}}},
                   {"name": "path-lookup", "user": {"exec": {"command": "kubelogin"}}},
                   {"name": "abs", "user": {"client-certificate": "/etc/u.crt", "exec": {"command": "/usr/bin/x"}}}]}
    b = {"clusters": [{"name": "c", "cluster": {"certificate-authority": "ignored"}},
                      {"name": "d", "cluster": {"certificate-authority": "../ca.crt"}}],
         "users": [{"name": "v", "user": {"exec": {"command": "bin/plugin"}}}]}
    merged = merge_kubeconfigs([("/home/me/.kube/a", a), ("/srv/other/b", b)])
    clusters = {c["name"]: c["cluster"] for c in merged["clusters"]}
    users = {u["name"]: u["user"] for u in merged["users"]}
    assert clusters["c"] == {"certificate-authority": "/home/me/.kube/pki/ca.crt", "certificate-authority-data": "keep"}
    assert clusters["d"] == {"certificate-authority": "/srv/ca.crt"}
    assert users["u"] == {"client-certificate": "/home/me/.kube/u.crt", "client-key": "/home/me/.kube/u.key",
                          "tokenFile": "/home/me/.kube/token",
                          "exec": {"command": "/home/me/.kube/bin/plugin", "args": ["rel/arg"]}}
    assert users["path-lookup"] == {"exec": {"command": "kubelogin"}}  # no slash: looked up on PATH
    assert users["abs"] == {"client-certificate": "/etc/u.crt", "exec": {"command": "/usr/bin/x"}}
    assert users["v"] == {"exec": {"command": "/srv/other/bin/plugin"}}


def test_a_relative_kubeconfig_path_resolves_against_the_working_directory(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    merged = merge_kubeconfigs([("sub/k", {"users": [{"name": "u", "user": {"tokenFile": "t"}}]})])
    assert merged["users"][0]["user"]["tokenFile"] == str(tmp_path / "sub" / "t")


def test_relative_credentials_load_from_the_files_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Each kind of path, used for real by the client's loader, from a directory that is not the cwd."""
    home = tmp_path / "kube"
    (home / "pki").mkdir(parents=True)
    (home / "pki" / "ca.crt").write_bytes(CA.read_bytes())
    (home / "pki" / "client.crt").write_bytes(CA.read_bytes())
    (home / "pki" / "client.key").write_bytes(KEY.read_bytes())
    (home / "token").write_text("from-token-file\n")
    (home / "bin").mkdir()
    plugin = home / "bin" / "plugin"
    plugin.write_text("#!/bin/sh\necho '{\"apiVersion\":\"client.authentication.k8s.io/v1\","
                      "\"kind\":\"ExecCredential\",\"status\":{\"token\":\"from-plugin\"}}'\n")
    plugin.chmod(0o755)
    cluster = {"server": "https://127.0.0.1:6443", "certificate-authority": "pki/ca.crt"}
    path = kc(home / "config", clusters=[("c", cluster)],
              users=[("cert", {"client-certificate": "pki/client.crt", "client-key": "pki/client.key"}),
                     ("tok", {"tokenFile": "token"}),
                     ("exec", {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "bin/plugin",
                                        "interactiveMode": "Never"}})],
              contexts=[("cert", "c", "cert"), ("tok", "c", "tok"), ("exec", "c", "exec")])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    missing = tmp_path / "missing.yaml"
    kubeconfig = joined(missing, path)
    cert = load_auth("cert", kubeconfig)
    assert cert.snapshot()[1] is not None and cert.snapshot()[0] == {}
    assert load_auth("tok", kubeconfig).snapshot()[0] == {"Authorization": "Bearer from-token-file"}
    assert load_auth("exec", kubeconfig).snapshot()[0] == {"Authorization": "Bearer from-plugin"}


def test_inline_data_is_used_and_wins_over_a_path(tmp_path: Path):
    data = base64.b64encode(CA.read_bytes()).decode()
    path = kc(tmp_path / "k", clusters=[("c", {"server": "https://127.0.0.1:1", "certificate-authority-data": data,
                                               "certificate-authority": "/nonexistent/ca.crt"})],
              users=[("u", {"client-certificate-data": data,
                            "client-key-data": base64.b64encode(KEY.read_bytes()).decode()})],
              contexts=[("c", "c", "u")])
    auth = load_auth("c", str(path))
    assert auth.snapshot()[1] is not None


def test_inline_data_that_is_not_base64_names_the_field(tmp_path: Path):
    path = kc(tmp_path / "k", clusters=[("c", {"server": "https://127.0.0.1:1", "certificate-authority-data": "@@@"})],
              contexts=[("c", "c", "u")])
    with pytest.raises(UsageError) as err:
        load_auth("c", str(path))
    one_line(err, str(path), "clusters[name=c].cluster.certificate-authority-data", "base64")


# ---------------------------------------------------------------- files
def test_missing_files_in_the_list_are_skipped(tmp_path: Path, staging_prod):
    a, b = staging_prod
    gone = tmp_path / "gone.yaml"
    assert [c.id for c in list_clusters(joined(gone, a, "", gone, b))] == ["staging", "prod"]
    assert load_kubeconfig(joined(gone, a, b)).files == (str(a), str(b))


def test_a_kubeconfig_that_does_not_exist_is_an_error(tmp_path: Path):
    with pytest.raises(UsageError) as err:
        list_clusters(str(tmp_path / "nope"))
    one_line(err, str(tmp_path / "nope"), "kubeconfig not found")
    with pytest.raises(UsageError) as err:
        list_clusters(joined(tmp_path / "nope", tmp_path / "nada"))
    one_line(err, "kubeconfig not found", str(tmp_path / "nada"))


def test_a_file_listed_twice_is_read_once(staging_prod):
    a, b = staging_prod
    assert [c.id for c in list_clusters(joined(a, b, a))] == ["staging", "prod"]


@pytest.mark.parametrize("text", ["", "\n", "# nothing here\n", "---\n"])
def test_empty_files_are_empty_configs(tmp_path: Path, staging_prod, text: str):
    a, _ = staging_prod
    empty = tmp_path / "empty.yaml"
    empty.write_text(text)
    os.utime(empty, (1_000_000_000, 1_000_000_000))  # an old file, not one caught mid-write
    assert [c.id for c in list_clusters(joined(empty, a))] == ["staging"]
    assert default_context(joined(empty, a)) == "staging"
    assert list_clusters(str(empty)) == []


# ---------------------------------------------------------------- bad files
@pytest.mark.parametrize(("text", "fragments"), [
    ("- just\n- a list\n", ["not a kubeconfig"]),
    ("current-context: [a]\n", ["current-context", "expected a string"]),
    ("contexts: {a: b}\n", ["contexts", "expected a list"]),
    ("users:\n- user: {token: t}\n", ["users[0].name", "non-empty string"]),
    ("clusters:\n- just-a-string\n", ["clusters[0]", "mapping"]),
    ("clusters:\n- name: c\n  cluster: [1]\n", ["clusters[name=c].cluster", "mapping"]),
    ("users:\n- name: u\n  user: {tokenFile: 3}\n", ["users[name=u].user.tokenFile", "string"]),
    ("users:\n- name: u\n  user: {exec: yes}\n", ["users[name=u].user.exec"]),
    ("contexts:\n- name: c\n  context: {namespace: [x]}\n", ["contexts[name=c].context.namespace"]),
    ("contexts:\n- name: c\n- name: c\n", ["contexts", 'duplicate name "c"']),
    ("contexts: [\n  {name: a}\n  oops\n", [":3:", "cannot read kubeconfig"]),
    ("\x00\x01binary", ["cannot read kubeconfig"]),
])
def test_a_broken_file_is_one_line_naming_it(tmp_path: Path, staging_prod, text: str, fragments: list[str]):
    a, _ = staging_prod
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    os.utime(bad, (1_000_000_000, 1_000_000_000))  # broken for good, not mid-write
    for kubeconfig in (str(bad), joined(a, bad)):
        with pytest.raises(UsageError) as err:
            list_clusters(kubeconfig)
        one_line(err, str(bad), *fragments)
        assert str(a) not in str(err.value)


def test_a_directory_in_the_list_is_an_error(tmp_path: Path, staging_prod):
    a, _ = staging_prod
    with pytest.raises(UsageError) as err:
        list_clusters(joined(a, tmp_path))
    one_line(err, str(tmp_path), "is a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads unreadable files")
def test_an_unreadable_file_is_an_error(tmp_path: Path, staging_prod):
    a, b = staging_prod
    b.chmod(0)
    try:
        with pytest.raises(UsageError) as err:
            list_clusters(joined(a, b))
        one_line(err, str(b), "permission denied")
    finally:
        b.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_an_unknown_context_lists_the_merged_ones(staging_prod):
    a, b = staging_prod
    with pytest.raises(UsageError) as err:
        load_auth("nope", joined(a, b))
    one_line(err, '"nope"', "staging, prod")


def test_credential_errors_name_the_file_that_defines_the_context(tmp_path: Path, staging_prod):
    a, _ = staging_prod
    b = kc(tmp_path / "b2.yaml", clusters=[("c", {"server": "https://127.0.0.1:1",
                                                  "certificate-authority": "missing-ca.crt"})],
           contexts=[("broken", "c", "u")])
    with pytest.raises(UsageError) as err:
        load_auth("broken", joined(a, b))
    one_line(err, str(b), "context broken", str(tmp_path / "missing-ca.crt"))
