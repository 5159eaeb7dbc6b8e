"""The PACKPATH lock, in-process (the fast subset make mutate runs): readers share it, writers
hold it alone, every refusal names the holders, and the lock file says who holds it."""

from __future__ import annotations

import os
import socket

import pytest

from qa2core.errors import Qa2Error
from qa2core.planning import paths
from qa2core.writing.lock import PackLock

ME = f"pid {os.getpid()}@{socket.gethostname()}"


@pytest.fixture
def pack(tmp_path):
    path = tmp_path / "2015.1.00123.S"
    path.mkdir()
    return path


def lock_text(pack) -> str:
    return paths.lock_file(pack).read_text()


def test_readers_share_the_lock_and_each_is_named(pack):
    with PackLock(pack, "tar", shared=True), PackLock(pack, "verify", shared=True):
        assert lock_text(pack) == f"tar {ME}\nverify {ME}\n"
        with pytest.raises(Qa2Error) as refused, PackLock(pack, "package"):
            pass
        assert str(refused.value) == (f"{pack}: another qa2 run holds the lock (tar {ME}, "
                                      f"verify {ME}); wait for it to finish [lock.held]")
    assert lock_text(pack) == ""  # the last reader out empties it


def test_a_reader_leaving_before_another_leaves_the_other_named(pack):
    first = PackLock(pack, "tar", shared=True).__enter__()
    with PackLock(pack, "verify", shared=True):
        first.__exit__(None, None, None)
        assert f"verify {ME}" in lock_text(pack)  # not emptied while a reader holds it
    assert lock_text(pack) == ""


def test_a_writer_keeps_readers_out_and_names_itself(pack):
    with PackLock(pack, "package"):
        assert lock_text(pack) == f"package {ME}\n"
        with pytest.raises(Qa2Error, match=rf"holds the lock \(package {ME}\)"), \
                PackLock(pack, "tar", shared=True):
            pass
    assert lock_text(pack) == ""
    with PackLock(pack, "tar", shared=True):  # free again once the writer is gone
        pass


def test_an_empty_lock_file_held_says_another_run(pack):
    holder = PackLock(pack, "package").__enter__()
    os.ftruncate(holder.fd, 0)
    with pytest.raises(Qa2Error, match=r"holds the lock \(another run\)"), PackLock(pack, "tar"):
        pass
    holder.__exit__(None, None, None)


def test_a_reader_alone_upgrades_to_repair_then_shares_again(pack):
    with PackLock(pack, "tar", shared=True) as lock:
        lock.exclusive("an interrupted run left a swap to finish")
        assert lock_text(pack) == f"tar {ME}\n"
        # alone while it repairs
        with pytest.raises(Qa2Error, match="holds the lock"), PackLock(pack, "verify", shared=True):
            pass
        lock.share()
        with PackLock(pack, "verify", shared=True):  # shared again
            pass


def test_an_upgrade_beside_another_reader_is_refused_and_lets_go(pack):
    with PackLock(pack, "verify", shared=True):
        lock = PackLock(pack, "tar", shared=True).__enter__()
        with pytest.raises(Qa2Error) as refused:
            lock.exclusive("an interrupted run left a swap to finish")
        assert str(refused.value) == (
            f"{pack}: an interrupted run left a swap to finish, which needs the lock alone, and "
            f"another qa2 run reads the package (verify {ME}, tar {ME}); run again when it has "
            "finished [lock.held]")
        assert lock.fd is None  # the failed upgrade holds nothing
        lock.__exit__(None, None, None)  # and leaving again is harmless
        assert f"verify {ME}" in lock_text(pack)
