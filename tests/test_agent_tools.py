"""``opencode-backup agent-tools``: opencode's own config gains or loses exactly one entry, and keeps
everything a user wrote in it (comments, layout, other servers), or is refused untouched."""

from __future__ import annotations

import importlib
import json
import os
import stat
from pathlib import Path

import pytest

from app import jsonc
from app.cli import main
from app.jsonc_edit import JsoncEditError, remove_member, set_member
from app.opencode import agent_config as ac

# main() builds the whole parser, which imports watchdog (through 'run'); watchdog starts its inotify
# thread at import. Import it here, once, so the thread-leak check does not blame these tests for it.
importlib.import_module("app.service.watcher")

ENTRY_PATH = ("mcp", "session_backup")
ENTRY = {"type": "local", "command": ["/opt/ocb/bin/opencode-backup", "mcp"], "enabled": True}

# Configs as people write them: comments everywhere, tabs, trailing commas, CRLF, one-liners.
CONFIGS = {
    "commented": """{
  "$schema": "https://opencode.ai/config.json",
  // the model I pay for
  "model": "anthropic/claude-sonnet", // keep
  /* a block
     comment */
  "mcp": {
    "github": { "type": "remote", "url": "https://example.invalid/mcp" }, // mine
  },
  "theme": "opencode",
}
""",
    "no mcp yet, tabs": '{\n\t"model": "x/y",\n\t"share": "disabled"\n}\n',
    "crlf": '{\r\n  "model": "x/y",\r\n  "mcp": {\r\n    "a": {"enabled": false}\r\n  }\r\n}\r\n',
    "one line": '{"model": "x/y", "mcp": {"a": {"enabled": false}}}',
    "empty mcp with a comment": '{\n  "mcp": {\n    // none yet\n  },\n  "x": 1\n}\n',
    "empty object": "{}",
}


def is_subsequence(short: str, long: str) -> bool:
    rest = iter(long)
    return all(c in rest for c in short)


@pytest.mark.parametrize("name", CONFIGS)
def test_enable_adds_one_entry_and_disable_gives_back_the_same_bytes(name: str) -> None:
    before = CONFIGS[name]
    enabled = set_member(before, ENTRY_PATH, ENTRY)
    doc = jsonc.loads(before)
    doc.setdefault("mcp", {})["session_backup"] = ENTRY
    assert jsonc.loads(enabled) == doc
    assert ("\r\n" in enabled) == ("\r\n" in before)
    assert is_subsequence(before, enabled)  # every character the user wrote is still there, in order
    removed = remove_member(enabled, ENTRY_PATH)
    if jsonc.loads(removed).get("mcp") == {} and "mcp" not in jsonc.loads(before):
        removed = remove_member(removed, ("mcp",))
    if name != "empty object":  # '{}' comes back as '{\n}'
        assert removed == before


def test_replacing_an_existing_entry_keeps_every_byte_around_it() -> None:
    head = '{\n  // servers\n  "mcp": {\n    "session_backup": '
    tail = ', // ours\n    "z": {"enabled": true}\n  }\n}\n'
    before = head + '{"type": "local", "command": ["/old/venv/bin/opencode-backup", "mcp"]}' + tail
    after = set_member(before, ENTRY_PATH, ENTRY)
    assert after.startswith(head) and after.endswith(tail)
    assert jsonc.loads(after)["mcp"]["session_backup"] == ENTRY


def test_an_mcp_key_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(JsoncEditError, match="mcp is not an object"):
        set_member('{"mcp": null}', ENTRY_PATH, ENTRY)


@pytest.fixture
def config_dir(isolated_home: Path) -> Path:
    return isolated_home / ".config" / "opencode"


def cli(*args: str) -> int:
    return main(["agent-tools", *args])


def listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else {}


def test_enable_creates_opencode_json_with_schema_and_is_idempotent(
    config_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("enable") == 0
    path = config_dir / "opencode.json"
    doc = json.loads(path.read_text())
    assert doc["$schema"] == "https://opencode.ai/config.json"
    assert set(doc) == {"$schema", "mcp"} and set(doc["mcp"]) == {"session_backup"}
    entry = doc["mcp"]["session_backup"]
    assert entry["type"] == "local" and entry["enabled"] is True and entry["command"][-1] == "mcp"
    assert Path(entry["command"][0]).is_absolute() and Path(entry["command"][0]).exists()
    assert "session-backup" not in path.read_text()  # a key opencode rejects
    assert "restart opencode" in capsys.readouterr().out
    files = listing(config_dir)
    mtime = path.stat().st_mtime_ns
    assert cli("enable") == 0
    assert "nothing to change: already on" in capsys.readouterr().out
    assert listing(config_dir) == files and path.stat().st_mtime_ns == mtime  # not even rewritten
    assert cli("status", "--json") == 0
    state = json.loads(capsys.readouterr().out)["state"]
    assert state["present"] and state["enabled"] and state["this_install"]
    assert state["command"] == entry["command"]


def test_enable_keeps_a_private_copy_of_the_file_as_it_was_and_its_mode(config_dir: Path) -> None:
    config_dir.mkdir(parents=True)
    path = config_dir / "opencode.json"
    path.write_text(CONFIGS["commented"])
    os.chmod(path, 0o644)
    assert cli("enable") == 0
    copy = config_dir / ("opencode.json" + ac.COPY_SUFFIX)
    assert copy.read_text() == CONFIGS["commented"]
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600  # opencode.json may hold API keys
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert "// the model I pay for" in path.read_text()
    assert cli("disable") == 0
    assert path.read_text() == CONFIGS["commented"]
    assert "session_backup" in copy.read_text()  # the copy is now of the enabled file


@pytest.mark.parametrize(
    "text", ['{\n  "model": "x/y",\n  "mcp": {\n', "[1, 2]", "", '{"a": 1} trailing'], ids=repr
)
def test_a_file_that_cannot_be_parsed_is_refused_in_one_line_and_nothing_is_written(
    config_dir: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    config_dir.mkdir(parents=True)
    (config_dir / "opencode.jsonc").write_text(text)
    before = listing(config_dir)
    for action in ("enable", "disable", "status"):
        assert cli(action) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "opencode.jsonc" in err and "nothing was written" in err, err
        assert listing(config_dir) == before


@pytest.mark.parametrize("shape", ["object", "array"])
def test_a_file_nested_100000_deep_is_refused_in_one_line_not_a_traceback(
    config_dir: Path, capsys: pytest.CaptureFixture[str], shape: str
) -> None:
    """The editor and the parsers recurse per level: a file nested this deep is damage, refused with
    exit 2 before anything is written (it was a RecursionError traceback)."""
    config_dir.mkdir(parents=True)
    deep = '{"a":' * 100_000 + "1" + "}" * 100_000 if shape == "object" else "[" * 100_000 + "]" * 100_000
    (config_dir / "opencode.json").write_text(deep)
    before = listing(config_dir)
    for action in ("enable", "disable", "status"):
        assert cli(action) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "not valid JSON" in err and "nothing was written" in err, err
        assert listing(config_dir) == before
    (config_dir / "opencode.json").unlink()
    (config_dir / "session-backup.json").write_text(deep)  # our own settings file: the same refusal
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nested more than" in err, err


# opencode reads its config as JavaScript does: of two equal keys the last one counts
DUPLICATES = {
    "two mcp objects": """{
  "mcp": {
    "github": {"type": "remote", "url": "https://example.invalid/mcp"}
  },
  "model": "a/b",
  "mcp": {
    "other": {"type": "local", "command": ["x"]}
  }
}
""",
    "two session_backup entries": """{
  "mcp": {
    "session_backup": {"type": "local", "command": ["old-one", "mcp"], "enabled": true},
    "github": {"type": "remote", "url": "https://example.invalid/mcp"},
    "session_backup": {"type": "local", "command": ["old-two", "mcp"], "enabled": false}
  }
}
""",
}


@pytest.mark.parametrize("name", DUPLICATES)
def test_duplicate_keys_the_edit_lands_in_the_copy_opencode_uses_and_disable_leaves_none_in_force(
    config_dir: Path, name: str
) -> None:
    config_dir.mkdir(parents=True)
    path = config_dir / "opencode.json"
    path.write_text(DUPLICATES[name])
    first_mcp = DUPLICATES[name].split('"model"')[0] if name == "two mcp objects" else None
    assert cli("enable") == 0
    text = path.read_text()
    effective = json.loads(text)["mcp"]  # the last of equal keys, as opencode takes it
    assert effective["session_backup"]["command"] == ac.mcp_command()
    assert effective["session_backup"]["enabled"] is True
    assert ac.read(config_dir, ac.mcp_command()).this_install
    if first_mcp is not None:
        assert text.startswith(first_mcp)  # the first, shadowed object is left as it was
        assert set(effective) == {"other", "session_backup"}
    assert cli("disable") == 0
    text = path.read_text()
    assert "session_backup" not in json.loads(text).get("mcp", {})
    assert not ac.read(config_dir, ac.mcp_command()).present
    assert "github" in text and (first_mcp is None or text.startswith(first_mcp))


def test_opencode_jsonc_is_edited_when_it_exists(config_dir: Path) -> None:
    config_dir.mkdir(parents=True)
    (config_dir / "opencode.json").write_text('{"model": "a/b"}\n')
    (config_dir / "opencode.jsonc").write_text('{\n  // mine\n  "theme": "x"\n}\n')
    assert cli("enable") == 0
    assert (config_dir / "opencode.json").read_text() == '{"model": "a/b"}\n'
    text = (config_dir / "opencode.jsonc").read_text()
    assert text.startswith('{\n  // mine\n  "theme": "x",\n  "mcp": {')
    assert jsonc.loads(text)["mcp"]["session_backup"]["enabled"] is True


def test_disable_removes_only_the_entry_and_keeps_other_servers(config_dir: Path) -> None:
    config_dir.mkdir(parents=True)
    path = config_dir / "opencode.json"
    path.write_text(CONFIGS["crlf"].replace("\r\n", "\n"))
    assert cli("enable") == 0
    assert set(json.loads(path.read_text())["mcp"]) == {"a", "session_backup"}
    assert cli("disable") == 0
    assert path.read_text() == CONFIGS["crlf"].replace("\r\n", "\n")
    assert cli("disable") == 0  # idempotent
    assert path.read_text() == CONFIGS["crlf"].replace("\r\n", "\n")


def test_enable_points_an_old_entry_at_this_install_and_keeps_the_users_additions(
    config_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_dir.mkdir(parents=True)
    path = config_dir / "opencode.json"
    old = {"type": "local", "command": ["/gone/opencode-backup", "mcp"], "enabled": False, "timeout": 90000}
    path.write_text(json.dumps({"mcp": {"session_backup": old}}, indent=2))
    assert cli("status") == 0
    assert "disabled in" in capsys.readouterr().out
    assert cli("enable") == 0
    entry = json.loads(path.read_text())["mcp"]["session_backup"]
    assert entry["enabled"] is True and entry["timeout"] == 90000
    assert entry["command"] == ac.mcp_command()


def test_a_symlinked_config_stays_a_link_and_its_target_is_edited(config_dir: Path, tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles" / "opencode.json"
    dotfiles.parent.mkdir()
    dotfiles.write_text('{"model": "a/b"}\n')
    config_dir.mkdir(parents=True)
    (config_dir / "opencode.json").symlink_to(dotfiles)
    assert cli("enable") == 0
    assert (config_dir / "opencode.json").is_symlink()
    assert "session_backup" in json.loads(dotfiles.read_text())["mcp"]


def test_a_byte_order_mark_is_kept(config_dir: Path) -> None:
    config_dir.mkdir(parents=True)
    path = config_dir / "opencode.json"
    path.write_bytes(b'\xef\xbb\xbf{\n  "model": "a/b"\n}\n')
    assert cli("enable") == 0
    assert path.read_bytes().startswith(b'\xef\xbb\xbf{\n  "model": "a/b",\n  "mcp"')


# opencode 2.0.26's config, read in its source (zjdCander/opencode @ 1066927): its global folder is 1.x's
# (packages/util/src/global.ts: XDG config "opencode", or OPENCODE_CONFIG_DIR); servers live in
# mcp.servers.<name> as {type: "local", command, cwd?, environment?, disabled?, codemode?, timeout?:
# {startup, catalog, execution}, protocol?} (packages/schema/src/mcp.ts LocalConfig, config/mcp.ts Info),
# and the flat 1.x mcp.<name> is still read and merged, the native entry winning a name
# (packages/core/src/config/normalize.ts normalizeMcp).
V2_CONFIG = """{
  "$schema": "https://opencode.ai/config.json",
  "mcp": {
    "timeout": {"startup": 5000},
    "servers": {
      // a server of mine
      "github": {"type": "remote", "url": "https://example.invalid/mcp"}
    }
  }
}
"""


def test_a_file_in_2_0s_shape_gets_the_entry_in_mcp_servers_and_loses_it_whole(
    config_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_dir.mkdir(parents=True)
    path = config_dir / "opencode.jsonc"
    path.write_text(V2_CONFIG)
    assert cli("enable") == 0
    doc = jsonc.loads(path.read_text())
    entry = doc["mcp"]["servers"]["session_backup"]
    assert set(entry) == {"type", "command"} and entry["command"][-1] == "mcp"  # no 1.x "enabled"
    assert "session_backup" not in doc["mcp"] and doc["mcp"]["timeout"] == {"startup": 5000}
    assert "// a server of mine" in path.read_text() and "github" in doc["mcp"]["servers"]
    assert f"on (mcp.servers.session_backup in {path})" in capsys.readouterr().out
    text = path.read_text().replace('"command"', '"disabled": true, "command"')
    path.write_text(text)
    assert cli("status") == 0
    assert "disabled in" in capsys.readouterr().out
    assert cli("disable") == 0
    assert path.read_text() == V2_CONFIG  # every byte as it was


def test_an_empty_or_flat_file_keeps_the_flat_map_both_versions_read(config_dir: Path) -> None:
    config_dir.mkdir(parents=True)
    path = config_dir / "opencode.json"
    path.write_text('{"mcp": {"servers": {"type": "local", "command": ["a-1.x-server-named-servers"]}}}')
    assert cli("enable") == 0
    doc = json.loads(path.read_text())
    assert doc["mcp"]["session_backup"]["enabled"] is True
    assert doc["mcp"]["servers"] == {"type": "local", "command": ["a-1.x-server-named-servers"]}


def test_opencode2s_own_config_folder_is_configured_too_and_status_names_both_files(
    config_dir: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    second = isolated_home / ".config" / "opencode2"
    assert cli("enable") == 0
    assert not second.exists()  # not created where there is none
    second.mkdir(parents=True)
    (second / "opencode.json").write_text(V2_CONFIG)
    capsys.readouterr()
    assert cli("enable") == 0
    out = capsys.readouterr().out
    assert f"on (mcp.session_backup in {config_dir / 'opencode.json'})" in out
    assert f"on (mcp.servers.session_backup in {second / 'opencode.json'})" in out
    assert cli("status", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"]["enabled"] and status["also"][0]["state"]["shape"] == "servers"
    elsewhere = isolated_home / "v2-config"
    elsewhere.mkdir()
    (elsewhere / "opencode.json").write_text("{not json")
    monkeypatch.setenv("OPENCODE2_CONFIG_DIR", str(elsewhere))
    before = (config_dir / "opencode.json").read_bytes()
    assert cli("disable") == 2  # that one does not parse: nothing is written anywhere
    assert (config_dir / "opencode.json").read_bytes() == before
