"""The same SQLite faults made real, where the machine allows it (root, Linux mounts):
a database on a tiny tmpfs that fills up and is then grown, and a database file
reached through a read-only bind mount. Skipped, with the reason, where mounting is
not possible; ``test_sqlite_faults`` covers the same ground portably.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from faults_support import check_histories, fast_worker, filler, filler_result, integrity, wait_for

import perdure
from perdure.errors import StoreError


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise OSError(done.stderr.strip() or f"mount {' '.join(args)} failed")


@pytest.fixture
def mount_point(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs or a read-only bind mount needs root")
    point = tmp_path / "mnt"
    point.mkdir()
    yield point
    subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)


async def test_disk_full_on_a_tiny_tmpfs(mount_point: Path) -> None:
    try:
        _mount("-t", "tmpfs", "-o", "size=640k", "tmpfs", str(mount_point))
    except OSError as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    path = mount_point / "tiny.db"
    client = await perdure.Client.connect(f"sqlite:///{path}")
    client.poll_interval = 0.02
    try:
        async with fast_worker(client):
            handles, refused = [], None
            for _ in range(200):
                try:
                    handles.append(await client.start(filler, 4, 8000))
                except StoreError as exc:
                    refused = exc
                    break
                await asyncio.sleep(0.02)
            assert refused is not None, "the tmpfs never filled up"
            assert "tiny.db" in str(refused) and "full" in str(refused), refused
            assert integrity(path) == [("ok",)]
            _mount("-o", "remount,size=32m", str(mount_point))  # the disk gets space
            for handle in handles:
                assert await handle.result(timeout=60) == filler_result(4, 8000)
            late = await client.start(filler, 1, 10)
            assert await late.result(timeout=20) == filler_result(1, 10)
        assert await check_histories(client) > 0
    finally:
        await client.close()
    assert integrity(path) == [("ok",)]


async def test_read_only_database_file(tmp_path: Path, mount_point: Path) -> None:
    source = tmp_path / "data"
    source.mkdir()
    client = await perdure.Client.connect(f"sqlite:///{source / 'shop.db'}")
    await client.start(filler, 2, 10, id="before")
    await client.close()
    try:
        _mount("--bind", str(source), str(mount_point))
        _mount("-o", "remount,bind,ro", str(mount_point))
    except OSError as exc:
        pytest.skip(f"cannot make a read-only bind mount here: {exc}")
    with pytest.raises(StoreError, match=r"cannot open SQLite database .*shop\.db"):
        await perdure.Client.connect(f"sqlite:///{mount_point / 'shop.db'}")
    # Through a writable path the same file is intact and the run completes.
    client = await perdure.Client.connect(f"sqlite:///{source / 'shop.db'}")
    client.poll_interval = 0.02
    try:
        async with fast_worker(client):
            handle = client.get_handle("before")
            assert await handle.result(timeout=20) == filler_result(2, 10)
    finally:
        await client.close()
    assert integrity(source / "shop.db") == [("ok",)]


async def _open_fds_on(path: Path) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(path)):
            found.append(target)
    return found


async def test_a_failed_open_leaves_no_file_open(tmp_path: Path, mount_point: Path) -> None:
    source = tmp_path / "data"
    source.mkdir()
    client = await perdure.Client.connect(f"sqlite:///{source / 'x.db'}")
    await client.close()
    try:
        _mount("--bind", str(source), str(mount_point))
        _mount("-o", "remount,bind,ro", str(mount_point))
    except OSError as exc:
        pytest.skip(f"cannot make a read-only bind mount here: {exc}")
    with pytest.raises(StoreError):
        await perdure.Client.connect(f"sqlite:///{mount_point / 'x.db'}")
    await wait_for(lambda: asyncio.sleep(0, True), 1, "nothing")
    assert await _open_fds_on(mount_point) == []
