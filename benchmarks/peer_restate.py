"""The benchmark workloads on Restate (server 1.7.12 + Python SDK 1.3.0).

Usage: python benchmarks/peer_restate.py MODE[=N] [MODE[=N] ...] [-n N] [-k K]
Modes: sequential (N=200), concurrent (500), recovery, sleep (1000); they run in
that order against one fresh server, and each prints one JSON line like
bench_perdure.py, with "engine": "restate" and "db": "restate".

Any Python will do: the first run sets up, under ``benchmarks/.peers/`` and
nothing system-wide, the server from the npm registry
(``@restatedev/restate-server``, a static binary) and a venv with
``restate-sdk hypercorn httpx aiohttp psutil``; then the script re-runs itself
in that venv. Each run starts restate-server with a wiped data dir and a
loopback-only config, starts the service (restate_service.py, hypercorn on
127.0.0.1), registers it, measures, and stops both, also on errors. If npm or
the server is unavailable it says so and exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PEERS = HERE / ".peers"
NPM_DIR = PEERS / "restate-npm"
VENV = PEERS / "restate-venv"
DATA = PEERS / "restate-data"
SERVER_VERSION = "1.7.12"
SDK_PACKAGES = ["restate-sdk==1.3.0", "hypercorn", "httpx", "aiohttp", "psutil"]
SERVER_BIN = (
    NPM_DIR / "node_modules" / "@restatedev" / "restate-server-linux-x64" / "bin" / "restate-server"
)
INGRESS_PORT, ADMIN_PORT, FABRIC_PORT, SERVICE_PORT = 18080, 19070, 15122, 19080
INGRESS = f"http://127.0.0.1:{INGRESS_PORT}"
ADMIN = f"http://127.0.0.1:{ADMIN_PORT}"
# Single node, every listener on 127.0.0.1 (the defaults bind all interfaces and
# add unix sockets), no telemetry. Ports differ from Restate's defaults so a
# Restate already running on this machine is left alone.
CONFIG = f"""\
node-name = "bench"
bind-ip = "127.0.0.1"
advertised-host = "127.0.0.1"
bind-address = "127.0.0.1:{FABRIC_PORT}"
listen-mode = "tcp"
disable-telemetry = true

[ingress]
bind-address = "127.0.0.1:{INGRESS_PORT}"

[admin]
bind-address = "127.0.0.1:{ADMIN_PORT}"
"""
ORDER = {"sequential": 200, "concurrent": 500, "recovery": 20, "sleep": 1000}
CONCURRENCY = 64


def note(msg: str) -> None:
    print(f"peer_restate: {msg}", file=sys.stderr, flush=True)


def fail(msg: str) -> None:
    note(msg)
    raise SystemExit(2)


# ---------------------------------------------------------------- set-up


def set_up() -> Path:
    """Install the server and the SDK venv once; return the venv's python."""
    python = VENV / "bin" / "python"
    PEERS.mkdir(exist_ok=True)
    if not SERVER_BIN.exists():
        npm = shutil.which("npm")
        if npm is None:
            fail("npm not found: Restate's server comes from the npm registry; skipping Restate")
        note(f"installing @restatedev/restate-server@{SERVER_VERSION} into {NPM_DIR} (~220 MB)")
        NPM_DIR.mkdir(exist_ok=True)
        cmd = [npm, "install", "--no-audit", "--no-fund", "--no-save"]
        cmd.append(f"@restatedev/restate-server@{SERVER_VERSION}")
        done = subprocess.run(cmd, cwd=NPM_DIR, stdout=sys.stderr)
        if done.returncode != 0 or not SERVER_BIN.exists():
            fail(f"npm install failed (exit {done.returncode}); {SERVER_BIN} missing")
    stamp = VENV / ".installed"
    if not stamp.exists():
        note(f"creating {VENV} with {' '.join(SDK_PACKAGES)}")
        try:
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
            pip = [str(python), "-m", "pip", "install", "-q", *SDK_PACKAGES]
            subprocess.run(pip, check=True, stdout=sys.stderr)
        except subprocess.CalledProcessError as exc:
            fail(f"could not set up the Restate SDK venv: {exc}")
        stamp.touch()
    return python


# ---------------------------------------------------------------- processes


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def die_with_parent() -> None:
    """In the child before exec: SIGTERM it if the benchmark process dies."""
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def stop(proc: subprocess.Popen[bytes] | None, grace: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Restate:
    """A fresh restate-server and the benchmark service, stopped by close()."""

    def __init__(self) -> None:
        import httpx
        import psutil

        self.server: subprocess.Popen[bytes] | None = None
        self.service: subprocess.Popen[bytes] | None = None
        self.logs = Path(tempfile.mkdtemp(prefix="restate-bench-"))
        self.http = httpx.Client(timeout=120)
        self.psutil = psutil

    def start(self) -> None:
        for port in (INGRESS_PORT, ADMIN_PORT, FABRIC_PORT, SERVICE_PORT):
            if port_open(port):
                fail(f"127.0.0.1:{port} is already in use; stop whatever listens there")
        shutil.rmtree(DATA, ignore_errors=True)
        DATA.mkdir(parents=True)
        config = PEERS / "restate.toml"
        config.write_text(CONFIG)
        cmd = [str(SERVER_BIN), "--config-file", str(config), "--base-dir", str(DATA), "--no-logo"]
        with open(self.logs / "server.log", "wb") as log:
            self.server = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
            )
        self.wait_for(lambda: self.http.get(f"{ADMIN}/health").status_code == 200, "server", 60)
        self.start_service()
        uri = f"http://127.0.0.1:{SERVICE_PORT}"

        def register() -> bool:
            r = self.http.post(f"{ADMIN}/deployments", json={"uri": uri, "force": True})
            return r.status_code < 300

        self.wait_for(register, "registration", 60)
        # The partition processors elect leaders a few seconds after start-up.
        self.wait_for(lambda: self.call_steps(1) == 1, "first invocation", 60)

    def wait_for(self, ready: Any, what: str, seconds: float) -> None:
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.server is not None and self.server.poll() is not None:
                fail(f"restate-server exited ({self.server.returncode}); see {self.logs}")
            with contextlib.suppress(Exception):
                if ready():
                    return
            time.sleep(0.2)
        fail(f"timed out waiting for {what}; logs in {self.logs}")

    def start_service(self) -> float:
        t0 = time.perf_counter()
        cmd = [sys.executable, str(HERE / "restate_service.py"), "--port", str(SERVICE_PORT)]
        with open(self.logs / "service.log", "ab") as log:
            self.service = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
            )
        deadline = time.time() + 30
        while not port_open(SERVICE_PORT):
            if self.service.poll() is not None or time.time() > deadline:
                fail(f"the service did not start; see {self.logs / 'service.log'}")
            time.sleep(0.01)
        return time.perf_counter() - t0

    def call_steps(self, k: int) -> int:
        r = self.http.post(f"{INGRESS}/Bench/steps", json=k)
        r.raise_for_status()
        return int(r.json()["k"])

    def rss(self) -> dict[str, int]:
        assert self.server is not None and self.service is not None
        return {
            "server": self.psutil.Process(self.server.pid).memory_info().rss,
            "sdk": self.psutil.Process(self.service.pid).memory_info().rss,
        }

    def sql(self, query: str) -> list[dict[str, Any]]:
        accept = {"accept": "application/json"}  # the default answer is Arrow
        r = self.http.post(f"{ADMIN}/query", json={"query": query}, headers=accept)
        r.raise_for_status()
        rows: list[dict[str, Any]] = r.json()["rows"]
        return rows

    def close(self, ok: bool) -> None:
        stop(self.service)
        stop(self.server)
        self.http.close()
        shutil.rmtree(DATA, ignore_errors=True)
        if ok:
            shutil.rmtree(self.logs, ignore_errors=True)
        else:
            note(f"logs of the server and the service: {self.logs}")


# ---------------------------------------------------------------- modes


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def sequential(rs: Restate, n: int, k: int) -> dict[str, Any]:
    for _ in range(5):
        rs.call_steps(k)
    latencies = []
    t0 = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        assert rs.call_steps(k) == k
        latencies.append((time.perf_counter() - t) * 1000)
    wall = time.perf_counter() - t0
    return {
        "mode": "sequential",
        "n": n,
        "k": k,
        "wf_per_s": n / wall,
        "steps_per_s": n * k / wall,
        "p50_ms": statistics.median(latencies),
        "p99_ms": pct(latencies, 0.99),
        "mean_ms": statistics.mean(latencies),
    }


async def post_many(n: int, path: str, body: Any, warm_up: bool = True) -> tuple[float, int]:
    """n POSTs, CONCURRENCY in flight, over aiohttp (httpx's AsyncClient spends
    ~10 ms of client CPU per request here: it would measure the client)."""
    import aiohttp

    sem = asyncio.Semaphore(CONCURRENCY)
    errors = 0
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    timeout = aiohttp.ClientTimeout(total=600)
    # No body for a handler without input: the ingress rejects aiohttp's
    # default application/octet-stream content type.
    extra: dict[str, Any] = {"json": body} if body is not None else {}
    skip = () if body is not None else ("Content-Type",)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> None:
            nonlocal errors
            async with sem:
                try:
                    async with session.post(
                        f"{INGRESS}{path}", skip_auto_headers=skip, **extra
                    ) as r:
                        r.raise_for_status()
                        await r.read()
                except Exception:
                    errors += 1

        if warm_up:  # open the connections
            await asyncio.gather(*(one() for _ in range(CONCURRENCY)))
        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return time.perf_counter() - t0, errors


def concurrent(n: int, k: int) -> dict[str, Any]:
    wall, errors = asyncio.run(post_many(n, "/Bench/steps", k))
    return {
        "mode": "concurrent",
        "n": n,
        "k": k,
        "concurrency": CONCURRENCY,
        "client": "aiohttp",
        "errors": errors,
        "wf_per_s": n / wall,
        "steps_per_s": n * k / wall,
        "wall_s": wall,
    }


def sleep(rs: Restate, n: int, suspend: bool) -> dict[str, Any]:
    """n invocations in ctx.sleep(1 h): RSS growth of the SDK process and of
    restate-server once all n have journaled their sleep. Restate keeps each
    sleeper's HTTP/2 stream and coroutine in the SDK until its 1-minute
    inactivity timeout suspends it; --suspend also measures after that."""
    # Warm the server up first (a fresh one grows its RocksDB memtables and
    # caches under any first load), so the baseline is a server in use.
    asyncio.run(post_many(200, "/Bench/steps", 10))
    time.sleep(1.0)
    before = rs.rss()
    t0 = time.perf_counter()
    _, errors = asyncio.run(post_many(n, "/Bench/sleeper/send", None, warm_up=False))
    query = (
        "SELECT status, count(*) AS n FROM sys_invocation "
        "WHERE target_handler_name = 'sleeper' AND journal_size >= 2 GROUP BY status"
    )
    status: dict[str, int] = {}
    deadline = time.time() + 120
    while sum(status.values()) < n - errors and time.time() < deadline:
        time.sleep(0.25)
        status = {row["status"]: row["n"] for row in rs.sql(query)}
    settle = time.perf_counter() - t0
    time.sleep(1.0)
    after = rs.rss()
    sleeping = sum(status.values())
    result: dict[str, Any] = {
        "mode": "sleep",
        "n": n,
        "sleeping": sleeping,
        "send_errors": errors,
        "settle_s": settle,
        "bytes_per_sleeper": (sum(after.values()) - sum(before.values())) / max(sleeping, 1),
        "bytes_measured": "RSS growth of the SDK process + restate-server, streams still open",
        "sdk_bytes_per_sleeper": (after["sdk"] - before["sdk"]) / max(sleeping, 1),
        "server_bytes_per_sleeper": (after["server"] - before["server"]) / max(sleeping, 1),
        "server_rss_before_kb": before["server"] // 1024,
        "server_rss_after_kb": after["server"] // 1024,
        "sdk_rss_before_kb": before["sdk"] // 1024,
        "sdk_rss_after_kb": after["sdk"] // 1024,
    }
    if suspend:
        while status.get("suspended", 0) < sleeping and time.time() < deadline:
            time.sleep(1.0)
            status = {row["status"]: row["n"] for row in rs.sql(query)}
        time.sleep(2.0)
        later = rs.rss()
        result.update(
            suspended=status.get("suspended", 0),
            suspended_after_s=time.perf_counter() - t0,
            server_bytes_per_suspended=(later["server"] - before["server"]) / max(sleeping, 1),
            sdk_bytes_per_suspended=(later["sdk"] - before["sdk"]) / max(sleeping, 1),
        )
    return result


def lines(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [ln.split() for ln in path.read_text().splitlines() if ln.count(" ") == 3]


def recovery(rs: Restate, k: int) -> dict[str, Any]:
    """SIGKILL the service mid-run (step 11 of 20 in flight); restart it at once.
    resume_s: kill -> first step starting in the new process; done_s: kill -> result."""
    side = rs.logs / "recovery-side.txt"
    r = rs.http.post(f"{INGRESS}/Bench/recover/send", json={"side": str(side), "k": k})
    r.raise_for_status()
    invocation = r.json()["invocationId"]
    deadline = time.time() + 60
    while len(lines(side)) < 11:
        if time.time() > deadline:
            fail("recovery: the steps did not progress")
        time.sleep(0.005)
    time.sleep(0.05)
    assert rs.service is not None
    rs.service.send_signal(signal.SIGKILL)
    rs.service.wait()
    killed_at = time.time()
    restart_s = rs.start_service()
    new = str(rs.service.pid)
    resumed = None
    while resumed is None and time.time() < killed_at + 120:
        starts = [float(ln[3]) for ln in lines(side) if ln[2] == new]
        if starts:
            resumed = min(starts) - killed_at
        time.sleep(0.002)
    r = rs.http.get(f"{INGRESS}/restate/invocation/{invocation}/attach", timeout=300)
    done = time.time() - killed_at
    r.raise_for_status()
    executed = [int(ln[1]) for ln in lines(side)]
    return {
        "mode": "recovery",
        "k": k,
        "resume_s": resumed,
        "done_s": done,
        "service_restart_s": restart_s,
        "steps_started_twice": sorted({i for i in executed if executed.count(i) > 1}),
        "result_ok": r.json() == sum(range(k)),
    }


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("modes", nargs="+", metavar="MODE[=N]")
    parser.add_argument("-n", type=int, default=None, help="N for every mode given")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--suspend", action="store_true", help="sleep: wait for suspension too")
    parser.add_argument("--setup-only", action="store_true")
    args = parser.parse_intermixed_args()
    sizes: dict[str, int] = {}
    for spec in args.modes:
        mode, _, size = spec.partition("=")
        if mode not in ORDER:
            parser.error(f"unknown mode {mode!r}; modes: {', '.join(ORDER)}")
        default = ORDER[mode] if mode == "recovery" else (args.n or ORDER[mode])
        sizes[mode] = int(size) if size else default

    python = set_up()
    if Path(sys.prefix).resolve() != VENV.resolve():
        if args.setup_only:
            return
        os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])

    if not os.access(SERVER_BIN, os.X_OK):
        fail(f"{SERVER_BIN} is not executable")
    rs = Restate()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # run finally: stop the server
    ok = False
    try:
        rs.start()
        for mode in ORDER:
            if mode not in sizes:
                continue
            n = sizes[mode]
            if mode == "sequential":
                result = sequential(rs, n, args.k)
            elif mode == "concurrent":
                result = concurrent(n, args.k)
            elif mode == "recovery":
                result = recovery(rs, n)
            else:
                result = sleep(rs, n, args.suspend)
            result = {"engine": "restate", "db": "restate", **result}
            print(json.dumps(result), flush=True)
        ok = True
    finally:
        rs.close(ok)


if __name__ == "__main__":
    main()
