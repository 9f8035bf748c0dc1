"""Drive the real opencode CLI (npm ``opencode-ai``, pinned in ``tests/opencode``) fully offline.

:class:`OpencodePeer` builds an isolated HOME under a base directory, starts a fake
OpenAI-compatible LLM (``fake_llm.py``) and one ``opencode serve`` on 127.0.0.1, and offers
helpers to create/prompt/delete/export sessions and to plant secrets in opencode's database.

Everything listens on 127.0.0.1 only; no process outlives :meth:`OpencodePeer.stop`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

HERE = Path(__file__).resolve().parent
#: The pinned opencode binary installed by ``npm ci`` in ``tests/opencode``.
DEFAULT_BINARY = HERE.parent / "opencode" / "node_modules" / ".bin" / "opencode"
FAKE_LLM = HERE / "fake_llm.py"
PROVIDER_ID = "fakeprov"
MODEL_ID = "fake"

#: Environment variables that keep opencode from phoning home or installing things.
DISABLE_ENV: dict[str, str] = {
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_MODELS_FETCH": "1",  # the one that matters: no models.dev download
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    "OPENCODE_DISABLE_SHARE": "1",
    "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
    "OPENCODE_DISABLE_CLAUDE_CODE": "1",
    "OPENCODE_DISABLE_EXTERNAL_SKILLS": "1",
}

# Requests to 127.0.0.1 must never go through a proxy configured in the test environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class OpencodePeerError(RuntimeError):
    """opencode (or the fake LLM) did not start or answered unexpectedly."""


def find_opencode() -> Path | None:
    """Return the opencode binary (``$OPENCODE_BIN`` or the pinned npm install), or None."""
    cand = os.environ.get("OPENCODE_BIN")
    path = Path(cand) if cand else DEFAULT_BINARY
    return path if path.exists() and os.access(path, os.X_OK) else None


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (bind port 0, then close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _load_prctl() -> Any:
    """Resolve libc's ``prctl`` now, in the parent, so the forked child only has to call it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """``preexec_fn``: have the child SIGKILLed when the test process dies abruptly (kill -9)."""
    _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL))


def _preexec() -> Any:
    """:func:`_die_with_parent` where it is safe: Linux, and no other thread alive during fork."""
    return _die_with_parent if _PRCTL is not None and threading.active_count() == 1 else None


def _stop_process(proc: subprocess.Popen[Any] | None, timeout: float = 10.0) -> None:
    """SIGTERM the process group of ``proc`` (started with a new session), wait, then SIGKILL it."""
    if proc is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)
    # Children left in the group (e.g. a git or ripgrep spawned by opencode) go too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


@dataclass(frozen=True)
class PlantedSecrets:
    """Distinctive secret strings planted by :meth:`OpencodePeer.plant_secrets`."""

    account_access: str
    account_refresh: str
    control_access: str
    control_refresh: str
    credential_value: str
    share_secret: str
    auth_api_key: str
    auth_oauth_access: str
    auth_oauth_refresh: str

    def all(self) -> list[str]:
        """Every planted token; none of them may appear in a backup."""
        return [
            self.account_access,
            self.account_refresh,
            self.control_access,
            self.control_refresh,
            self.credential_value,
            self.share_secret,
            self.auth_api_key,
            self.auth_oauth_access,
            self.auth_oauth_refresh,
        ]


class OpencodePeer:
    """A real opencode in an isolated HOME, with a fake LLM and one ``opencode serve``.

    Typical use::

        with OpencodePeer(tmp_path).start() as oc:
            sid = oc.create_session("demo")
            oc.stop_serve(); ...change oc.db_path...; oc.start_serve()

    Attributes: ``base``, ``home``, ``project`` (a git repo, opencode's working directory),
    ``data_dir`` (``$XDG_DATA_HOME/opencode``), ``db_path``, ``auth_path``, ``env`` (the
    environment for running the CLI), ``base_url`` (of serve, None while stopped).
    """

    def __init__(self, base: Path | str, binary: Path | str | None = None) -> None:
        self.base = Path(base).resolve()
        found = Path(binary) if binary else find_opencode()
        if found is None or not found.exists():
            raise OpencodePeerError(f"opencode binary not found (looked at {binary or DEFAULT_BINARY})")
        self.binary = found
        self.home = self.base / "home"
        self.project = self.base / "project"
        self.logs = self.base / "logs"
        self.config_dir = self.home / ".config" / "opencode"
        self.data_dir = self.home / ".local" / "share" / "opencode"
        self.db_path = self.data_dir / "opencode.db"
        self.auth_path = self.data_dir / "auth.json"
        self.env = self._make_env()
        self.llm_port: int | None = None
        self.port: int | None = None
        self._llm: subprocess.Popen[bytes] | None = None
        self._serve: subprocess.Popen[bytes] | None = None
        self._serve_count = 0

    # ------------------------------------------------------------------ setup
    def _make_env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OPENCODE", "XDG_")) and k.lower() not in ("http_proxy", "https_proxy")
        }
        h = str(self.home)
        env.update(
            HOME=h,
            XDG_CONFIG_HOME=f"{h}/.config",
            XDG_DATA_HOME=f"{h}/.local/share",
            XDG_CACHE_HOME=f"{h}/.cache",
            XDG_STATE_HOME=f"{h}/.local/state",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
            PWD=str(self.project),  # opencode takes its working directory from $PWD
            **DISABLE_ENV,
        )
        return env

    def _write_home(self) -> None:
        """Write opencode.json (fake provider) and seed node_modules so opencode skips npm install."""
        for d in (self.config_dir / "node_modules", self.data_dir.parent, self.home / ".cache"):
            d.mkdir(parents=True, exist_ok=True)
        (self.home / ".local" / "state").mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        config = {
            "$schema": "https://opencode.ai/config.json",
            "autoupdate": False,
            "share": "disabled",
            "model": f"{PROVIDER_ID}/{MODEL_ID}",
            "small_model": f"{PROVIDER_ID}/{MODEL_ID}",
            "enabled_providers": [PROVIDER_ID],
            "lsp": False,
            "formatter": False,
            "provider": {
                PROVIDER_ID: {
                    "npm": "@ai-sdk/openai-compatible",
                    "name": "Fake local LLM",
                    "options": {"baseURL": f"http://127.0.0.1:{self.llm_port}/v1", "apiKey": "sk-fake"},
                    "models": {
                        MODEL_ID: {
                            "name": "Fake",
                            "tool_call": True,
                            "limit": {"context": 128000, "output": 4096},
                        }
                    },
                }
            },
        }
        (self.config_dir / "opencode.json").write_text(json.dumps(config, indent=2))
        # Npm.install() is skipped when node_modules exists and package-lock lists every dependency.
        deps = {"@opencode-ai/plugin": "*"}
        pkg = {"name": "oc-config", "private": True, "dependencies": deps}
        lock = {"lockfileVersion": 3, "packages": {"": {"dependencies": deps}}}
        (self.config_dir / "package.json").write_text(json.dumps(pkg))
        (self.config_dir / "package-lock.json").write_text(json.dumps(lock))

    def _make_project(self) -> None:
        """Create a one-commit git repository as opencode's project directory."""
        if (self.project / ".git").is_dir():
            return
        self.project.mkdir(parents=True, exist_ok=True)
        (self.project / "README.md").write_text("# fake project\n")
        git = [
            "git",
            "-C",
            str(self.project),
            "-c",
            "user.email=peer@example.invalid",
            "-c",
            "user.name=peer",
        ]
        git += ["-c", "commit.gpgsign=false"]
        for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "init"]):
            subprocess.run(git + args, check=True, env=self.env, capture_output=True)

    def start(self, serve: bool = True) -> Self:
        """Set up HOME and the project, start the fake LLM and ``opencode serve``; return self.

        With ``serve=False`` serve is not started: a test can change opencode's config first and
        then call :meth:`start_serve` (one serve start, ~3 s, instead of two).
        """
        try:
            self._make_project()
            self._start_llm()
            self._write_home()
            if serve:
                self.start_serve()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_llm(self, timeout: float = 15.0) -> None:
        if self._llm is not None and self._llm.poll() is None:
            return
        self.logs.mkdir(parents=True, exist_ok=True)
        port_file = self.logs / "fake_llm.port"
        port_file.unlink(missing_ok=True)
        log = self.logs / "fake_llm.log"
        with open(log, "ab") as out:
            self._llm = subprocess.Popen(
                [sys.executable, str(FAKE_LLM), "--port", "0", "--port-file", str(port_file)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_preexec(),  # noqa: PLW1509 - only when single-threaded
            )
        deadline = time.monotonic() + timeout
        while not port_file.exists():
            if self._llm.poll() is not None:
                raise OpencodePeerError(f"fake LLM exited rc={self._llm.returncode}: {_tail(log)}")
            if time.monotonic() > deadline:
                raise OpencodePeerError(f"fake LLM did not start in {timeout}s: {_tail(log)}")
            time.sleep(0.02)
        self.llm_port = int(port_file.read_text())

    # ------------------------------------------------------------------ serve
    @property
    def base_url(self) -> str | None:
        """``http://127.0.0.1:PORT`` of the running serve, or None."""
        return f"http://127.0.0.1:{self.port}" if self._serve is not None else None

    @property
    def serve_running(self) -> bool:
        """True while ``opencode serve`` is alive."""
        return self._serve is not None and self._serve.poll() is None

    def start_serve(self, timeout: float = 60.0) -> None:
        """Start ``opencode serve --hostname 127.0.0.1 --port P`` and wait for /global/health."""
        if self.serve_running:
            return
        if self.llm_port is None:
            raise OpencodePeerError("call start() first")
        last_err = ""
        for _attempt in range(3):  # the free port may be taken between picking and binding
            self._serve_count += 1
            self.port = free_port()
            log = self.logs / f"serve-{self._serve_count}.log"
            cmd = [str(self.binary), "serve", "--hostname", "127.0.0.1", "--port", str(self.port)]
            with open(log, "ab") as out:
                self._serve = subprocess.Popen(
                    cmd,
                    cwd=self.project,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_preexec(),  # noqa: PLW1509 - only when single-threaded
                )
            if self._wait_health(timeout, log):
                return
            last_err = _tail(log)
            _stop_process(self._serve)
            self._serve = None
        raise OpencodePeerError(f"opencode serve did not become healthy: {last_err}")

    def _wait_health(self, timeout: float, log: Path) -> bool:
        assert self._serve is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._serve.poll() is not None:
                return False
            try:  # short per-request timeout: early requests can hang while serve boots
                with _OPENER.open(f"{self.base_url}/global/health", timeout=1) as r:
                    if r.status == 200:
                        return True
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        raise OpencodePeerError(f"opencode serve not healthy after {timeout}s: {_tail(log)}")

    def stop_serve(self) -> None:
        """Stop ``opencode serve`` (SIGTERM, wait, SIGKILL). The fake LLM keeps running."""
        proc, self._serve = self._serve, None
        _stop_process(proc)

    def restart(self) -> None:
        """Stop and start ``opencode serve`` again (a new port)."""
        self.stop_serve()
        self.start_serve()

    def stop(self) -> None:
        """Stop serve and the fake LLM; safe to call more than once."""
        self.stop_serve()
        proc, self._llm = self._llm, None
        _stop_process(proc)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:
        # Last resort only; callers should use stop() / the context manager / the fixture.
        with contextlib.suppress(Exception):
            self.stop()

    # ------------------------------------------------------------------ HTTP API
    def api(self, method: str, path: str, body: Any = None, timeout: float = 120.0) -> Any:
        """Call serve's HTTP API (``?directory=`` = the project) and return the decoded JSON."""
        if not self.serve_running:
            raise OpencodePeerError("opencode serve is not running")
        sep = "&" if "?" in path else "?"
        url = f"{self.base_url}{path}{sep}directory={urllib.parse.quote(str(self.project))}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            url, method=method, data=data, headers={"content-type": "application/json"}
        )
        try:
            with _OPENER.open(req, timeout=timeout) as r:
                raw = r.read()
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:2000]
            e.close()
            raise OpencodePeerError(f"{method} {path} -> HTTP {e.code}: {detail}") from None
        return json.loads(raw) if raw else None

    def create_session(self, title: str, prompts: int = 2, todo: bool = True, settle: bool = True) -> str:
        """Create a session through the API and send ``prompts`` prompts; return its id.

        With ``todo`` the second prompt contains "TODO", so the fake LLM answers with a
        ``todowrite`` tool call that fills the ``todo`` table (2 rows). With ``settle`` wait
        until opencode's asynchronous follow-up writes are done (see :meth:`wait_settled`).
        """
        sid = str(self.api("POST", "/session", {"title": title})["id"])
        for j in range(prompts):
            text = f"{'TODO ' if todo and j == 1 else ''}{title}: prompt {j}"
            self.prompt(sid, text)
        if settle:
            self.wait_settled(sid)
        return sid

    def _fingerprint(self, session_id: str) -> tuple[Any, ...]:
        con = self.connect()
        try:
            return tuple(
                con.execute(
                    "SELECT (SELECT seq FROM event_sequence WHERE aggregate_id = :s),"
                    " (SELECT time_updated FROM session WHERE id = :s),"
                    " (SELECT max(time_updated) FROM message WHERE session_id = :s),"
                    " (SELECT max(time_updated) FROM part WHERE session_id = :s)",
                    {"s": session_id},
                ).fetchone()
            )
        finally:
            con.close()

    def wait_settled(self, session_id: str, quiet: float = 0.3, timeout: float = 15.0) -> None:
        """Wait until the session's rows stop changing for ``quiet`` seconds.

        ``POST /session/ID/message`` returns before opencode is done writing: ~50 ms later it
        bumps ``session.time_updated`` and ~150 ms later it rewrites the user message (summary
        diffs). This polls event_sequence.seq and the max ``time_updated`` of
        session/message/part for the session.
        """
        deadline = time.monotonic() + timeout
        last = self._fingerprint(session_id)
        since = time.monotonic()
        while time.monotonic() - since < quiet:
            if time.monotonic() > deadline:
                raise OpencodePeerError(f"session {session_id} still changing after {timeout}s")
            time.sleep(0.02)
            cur = self._fingerprint(session_id)
            if cur != last:
                last, since = cur, time.monotonic()

    def prompt(self, session_id: str, text: str) -> dict[str, Any]:
        """Send one user prompt and wait for the (last) assistant message ``{info, parts}``."""
        body = {
            "parts": [{"type": "text", "text": text}],
            "model": {"providerID": PROVIDER_ID, "modelID": MODEL_ID},
        }
        res: dict[str, Any] = self.api("POST", f"/session/{session_id}/message", body)
        return res

    def list_sessions(self) -> list[dict[str, Any]]:
        """``GET /session``: the sessions of the project."""
        res: list[dict[str, Any]] = self.api("GET", "/session")
        return res

    def delete_session(self, session_id: str, via: str = "api") -> None:
        """Delete a session through ``DELETE /session/ID`` (``via="api"``) or the CLI (``"cli"``)."""
        if via == "api":
            self.api("DELETE", f"/session/{session_id}")
        elif via == "cli":
            self.cli("session", "delete", session_id, check=True)
        else:
            raise ValueError(f"via must be 'api' or 'cli', not {via!r}")

    # ------------------------------------------------------------------ CLI
    def cli(
        self, *args: str, check: bool = False, timeout: float = 120.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``opencode ARGS`` in the project with :attr:`env`; return its text output.

        stdout/stderr go to temporary *files*, not pipes: opencode (bun) exits before a pipe
        is drained, so piped output is cut at 64 KiB (e.g. ``opencode export`` of a big session).
        The CLI opens the database itself, so it works with or without serve running.
        """
        self.project.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        cmd = [str(self.binary), *args]
        with (
            tempfile.TemporaryFile(dir=self.logs) as out_f,
            tempfile.TemporaryFile(dir=self.logs) as err_f,
            subprocess.Popen(
                cmd,
                cwd=self.project,
                env=self.env,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=out_f,
                stderr=err_f,
                start_new_session=True,
                preexec_fn=_preexec(),  # noqa: PLW1509 - only when single-threaded
            ) as proc,
        ):
            try:
                proc.communicate(input.encode() if input is not None else None, timeout=timeout)
            except subprocess.TimeoutExpired:
                _stop_process(proc, timeout=5)
                raise OpencodePeerError(f"{cmd} timed out after {timeout}s") from None
            finally:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
            out_f.seek(0)
            err_f.seek(0)
            out = out_f.read().decode(errors="replace")
            err = err_f.read().decode(errors="replace")
        res = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
        if check and res.returncode != 0:
            raise OpencodePeerError(f"{cmd} rc={res.returncode}\nstdout={out[-2000:]}\nstderr={err[-2000:]}")
        return res

    def export(self, session_id: str) -> dict[str, Any]:
        """``opencode export ID`` parsed: ``{"info": {...}, "messages": [{"info", "parts"}, ...]}``.

        The CLI prints ``Exporting session: ID`` on stderr and the pretty-printed JSON on
        stdout; anything before the first ``{`` on stdout is skipped to be safe.
        """
        res = self.cli("export", session_id, check=True)
        out = res.stdout
        start = out.find("{")
        if start < 0:
            raise OpencodePeerError(f"no JSON in export output: {out[:500]!r} / {res.stderr[-500:]!r}")
        data, _end = json.JSONDecoder().raw_decode(out, start)
        if not isinstance(data, dict):
            raise OpencodePeerError(f"export output is not an object: {out[:200]!r}")
        return data

    # ------------------------------------------------------------------ database
    def connect(self, readonly: bool = True, timeout: float = 2.0) -> sqlite3.Connection:
        """Open opencode.db (read-only by default) with a short busy timeout."""
        if readonly:
            uri = f"file:{urllib.parse.quote(str(self.db_path))}?mode=ro"
            return sqlite3.connect(uri, uri=True, timeout=timeout)
        return sqlite3.connect(self.db_path, timeout=timeout)

    def count_rows(self, table: str, where: str = "", params: tuple[Any, ...] = ()) -> int:
        """``SELECT count(*) FROM table [WHERE ...]`` on a fresh read-only connection."""
        con = self.connect()
        try:
            sql = f"SELECT count(*) FROM {table}" + (f" WHERE {where}" if where else "")
            return int(con.execute(sql, params).fetchone()[0])
        finally:
            con.close()

    def plant_secrets(self, session_id: str) -> PlantedSecrets:
        """Plant distinctive secrets: rows in ``account``, ``control_account``, ``credential`` and
        ``session_share`` (for ``session_id``), plus ``<data>/auth.json``. Return the tokens.

        Works while serve runs (WAL + a short busy timeout) or while it is stopped. The URLs
        point at a closed port on 127.0.0.1 and the control account is inactive, so opencode
        never tries to use them.
        """
        tag = secrets.token_hex(6)

        def tok(kind: str) -> str:
            return f"OCPEER-SECRET-{kind}-{tag}-{secrets.token_hex(8)}"

        s = PlantedSecrets(
            account_access=tok("account-access"),
            account_refresh=tok("account-refresh"),
            control_access=tok("control-access"),
            control_refresh=tok("control-refresh"),
            credential_value=tok("credential"),
            share_secret=tok("share"),
            auth_api_key=tok("auth-api"),
            auth_oauth_access=tok("auth-oauth-access"),
            auth_oauth_refresh=tok("auth-oauth-refresh"),
        )
        now = int(time.time() * 1000)
        url = "http://127.0.0.1:9"
        con = self.connect(readonly=False, timeout=5.0)
        try:
            with con:
                con.execute(
                    "INSERT INTO account (id, email, url, access_token, refresh_token, token_expiry,"
                    " time_created, time_updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (f"acc_{tag}", f"peer-{tag}@example.invalid", url, s.account_access, s.account_refresh,
                     now + 3_600_000, now, now),
                )  # fmt: skip
                con.execute(
                    "INSERT INTO control_account (email, url, access_token, refresh_token, token_expiry,"
                    " active, time_created, time_updated) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
                    (f"ctl-{tag}@example.invalid", url, s.control_access, s.control_refresh,
                     now + 3_600_000, now, now),
                )  # fmt: skip
                con.execute(
                    "INSERT INTO credential (id, integration_id, label, value, connector_id, method_id,"
                    " active, time_created, time_updated) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)",
                    (f"cred_{tag}", "peer-integration", "peer credential", s.credential_value,
                     "peer-connector", "api-key", now, now),
                )  # fmt: skip
                con.execute(
                    "INSERT OR REPLACE INTO session_share (session_id, id, secret, url, time_created,"
                    " time_updated) VALUES (?, ?, ?, ?, ?, ?)",
                    (session_id, f"shr_{tag}", s.share_secret, f"{url}/s/{tag}", now, now),
                )  # fmt: skip
        finally:
            con.close()
        auth: dict[str, Any] = {}
        if self.auth_path.exists():
            auth = json.loads(self.auth_path.read_text() or "{}")
        auth["openai"] = {"type": "api", "key": s.auth_api_key}
        auth["anthropic"] = {
            "type": "oauth",
            "access": s.auth_oauth_access,
            "refresh": s.auth_oauth_refresh,
            "expires": now + 3_600_000,
        }
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.auth_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(auth, f, indent=2)
        return s

    def wipe(self) -> None:
        """Stop everything and delete the base directory."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
