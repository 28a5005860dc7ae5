"""PostgreSQL faults under a running worker: every connection killed by the server
(``pg_terminate_backend``), statements cancelled by ``statement_timeout`` while another
session holds a lock, and a restart of a private server. Each gives clear StoreErrors
(or is absorbed), loses nothing, and heals without restarting the worker.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from faults_support import check_histories, fast_worker, filler, filler_result, gate, wait_for
from pg_support import ADMIN_URL

import perdure
from perdure.errors import StoreError

pytestmark = pytest.mark.slow
T = TypeVar("T")


def _admin() -> Any:
    import psycopg

    return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)


def _terminate_backends(database: str) -> int:
    with _admin() as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return sum(1 for (ok,) in rows if ok)


async def retrying(call: Callable[[], Awaitable[T]], what: str, attempts: int = 50) -> T:
    """A client call made around a fault: a StoreError is an acceptable answer (it must
    name PostgreSQL); the caller then tries again, as an application would."""
    for _ in range(attempts):
        try:
            return await call()
        except StoreError as exc:
            assert "PostgreSQL" in str(exc), exc
            await asyncio.sleep(0.1)
    raise AssertionError(f"{what} still failed after {attempts} attempts")


async def _result(handle: perdure.WorkflowHandle[Any], timeout: float) -> Any:
    return await retrying(lambda: handle.result(timeout=timeout), f"result of {handle.id}")


def _start(client: perdure.Client, *args: Any, id: str) -> Awaitable[Any]:
    # use_existing: a start whose answer was lost with its connection is not doubled.
    return retrying(
        lambda: client.start(filler, *args, id=id, id_conflict="use_existing"), f"start {id}"
    )


async def test_connections_killed_by_the_server(pg_url: str) -> None:
    database = pg_url.rsplit("/", 1)[1]
    client = await perdure.Client.connect(pg_url)
    client.poll_interval = 0.02
    killed = 0
    try:
        async with fast_worker(client, lease_timeout=3.0):
            handles = [await client.start(filler, 8, 100, id=f"f{i}") for i in range(4)]
            waiting = await client.start(gate, "g", id="gate")
            for round_ in range(5):
                await asyncio.sleep(0.3)
                killed += await asyncio.to_thread(_terminate_backends, database)
                handles.append(await _start(client, 2, 10, id=f"late{round_}"))
            await retrying(lambda: waiting.signal("go", "after the drops"), "signal")
            for handle in handles:
                steps, size = (8, 100) if handle.id.startswith("f") else (2, 10)
                assert await _result(handle, 60) == filler_result(steps, size)
            assert await _result(waiting, 30) == "g:after the drops"
        assert await check_histories(client) > 0
    finally:
        await client.close()
    assert killed >= 5, f"only {killed} server connections were terminated"
    print(f"terminated {killed} PostgreSQL backends under a running worker")


async def test_statement_timeout_while_a_table_is_locked(pg_url: str) -> None:
    database = pg_url.rsplit("/", 1)[1]
    with _admin() as admin:  # every new session of the database gets the timeout
        admin.execute(f'ALTER DATABASE "{database}" SET statement_timeout = 400')
    client = await perdure.Client.connect(pg_url)
    client.poll_interval = 0.02
    try:
        async with fast_worker(client, lease_timeout=3.0):
            running = await client.start(filler, 6, 10, id="r")
            import psycopg

            with psycopg.connect(pg_url, connect_timeout=5) as holder:
                # From a thread: waiting on this loop would also stop the
                # worker's transaction in flight, which the lock waits for.
                await asyncio.to_thread(holder.execute, "LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")
                with pytest.raises(StoreError, match="statement timeout"):
                    await client.start(filler, 1, 1, id="blocked")
                await asyncio.sleep(1.0)  # the worker runs into it too
                holder.rollback()
            assert await running.result(timeout=30) == filler_result(6, 10)
            late = await client.start(filler, 1, 10, id="late")
            assert await late.result(timeout=30) == filler_result(1, 10)
        assert await check_histories(client) > 0
    finally:
        await client.close()


# ---------------------------------------------------------------- a private server


def _pg_bin(name: str) -> str | None:
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).exists():
            return str(folder / name)
    return shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def private_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """A throw-away PostgreSQL server (initdb + pg_ctl, as the ``postgres`` user) and a
    function that restarts it."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    runuser = shutil.which("runuser")
    if os.geteuid() != 0 or not (initdb and pg_ctl and runuser):
        pytest.skip("a private PostgreSQL server needs root, runuser, initdb and pg_ctl")
    import pwd

    try:
        pg_user = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no 'postgres' system user to run a private server as")
    folder = Path(f"/tmp/perdure-pg-{os.getpid()}-{_free_port()}")
    folder.mkdir(mode=0o700)
    os.chown(folder, pg_user.pw_uid, pg_user.pw_gid)
    data, port = folder / "data", _free_port()

    def as_postgres(*cmd: str) -> None:
        done = subprocess.run(
            [runuser, "-u", "postgres", "--", *cmd],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")

    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    try:
        as_postgres(initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
        as_postgres(pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w",
                    "start")  # fmt: skip
    except RuntimeError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"could not start a private PostgreSQL server: {exc}")

    def restart() -> None:
        as_postgres(pg_ctl, "-D", str(data), "-l", str(folder / "log"), "-m", "fast", "-w",
                    "restart")  # fmt: skip

    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres", restart
    finally:
        subprocess.run(
            [runuser, "-u", "postgres", "--", pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        _kill_postmaster(data / "postmaster.pid")  # if pg_ctl could not stop it
        shutil.rmtree(folder, ignore_errors=True)


def _kill_postmaster(pid_file: Path) -> None:
    """SIGKILL the private server this fixture started, by the pid it recorded."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return  # stopped: its pid file is gone
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


async def test_server_restart(private_server: tuple[str, Any]) -> None:
    url, restart = private_server
    client = await perdure.Client.connect(url)
    client.poll_interval = 0.02
    try:
        async with fast_worker(client, lease_timeout=3.0):
            handles = [await client.start(filler, 10, 100, id=f"r{i}") for i in range(3)]
            waiting = await client.start(gate, "g", id="gate")
            await wait_for(lambda: _progressed(handles[0]), 20, "the first workflow to get going")
            await asyncio.to_thread(restart)
            handles.append(await _start(client, 2, 10, id="after-restart"))
            await retrying(lambda: waiting.signal("go", "back"), "signal")
            for handle in handles:
                steps, size = (10, 100) if handle.id.startswith("r") else (2, 10)
                assert await _result(handle, 60) == filler_result(steps, size)
            assert await _result(waiting, 30) == "g:back"
        assert await check_histories(client) > 0
    finally:
        await client.close()


async def _progressed(handle: perdure.WorkflowHandle[int]) -> bool:
    return (await handle.describe()).history_length >= 6


async def test_libpq_options_in_the_url_reach_the_server(pg_url: str) -> None:
    client = await perdure.Client.connect(pg_url + "?options=-c%20statement_timeout%3D400")
    await client.close()
