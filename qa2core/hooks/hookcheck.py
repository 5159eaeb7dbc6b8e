"""What the manager checks around plugins, each mistake said as the author's own: hooks without
``@hookimpl``, unknown hook names (with a close match), arguments a hook is never given, results
of the wrong type; a hook's stdout kept off qa2's stdout; a source rewritten while a hook ran."""

from __future__ import annotations

import contextlib
import difflib
import inspect
import io
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pluggy

from qa2core.errors import PluginFailed, Qa2Error
from qa2core.hooks import hookspecs
from qa2core.hooks.model import Claim, Collected, Collection, Finding, Placement
from qa2core.planning.ous import OusUids

SPECS = {n: tuple(p for p in inspect.signature(f).parameters if p != "self")
         for n, f in vars(hookspecs.Qa2Specs).items() if n.startswith("qa2_")}
OPTIONAL = ("qa2_ous_uids", "qa2_validate", "qa2_contribute", "qa2_batch_executor")
SLACK_NS = 50_000_000  # file-system clocks run coarser than time.time_ns()


class PluginInvalid(PluginFailed, pluggy.PluginValidationError):
    """A plugin pluggy would refuse, said in one line (still a ``PluginValidationError``)."""

    def __init__(self, plugin: object, message: str) -> None:
        Exception.__init__(self, message)  # both bases' fields, set by hand (their inits differ)
        self.lines, self.plugin, self.message = (message,), plugin, message


def results() -> dict[str, tuple[type, str]]:  # type of a hook's result or of its items
    from qa2core.hooks.compose import Contribution

    return {"qa2_detect": (Claim, "Claim or None"), "qa2_ous_uids": (OusUids, "OusUids or None"),
            "qa2_collect": (Collected, "Collection or a sequence of Collected"),
            "qa2_layout": (Placement, "a sequence of Placement"),
            "qa2_validate": (Finding, "a sequence of Finding or None"),
            "qa2_contribute": (Contribution, "Contribution or None")}


def _seq(result: Any, kind: type, what: str = "") -> str:
    if isinstance(result, str | bytes) or not isinstance(result, Sequence):
        return type(result).__name__
    return next((f"{what or type(result).__name__} holding {type(x).__name__} at index {i}"
                 for i, x in enumerate(result) if not isinstance(x, kind)), "")


def wrong(hook: str, got: Any) -> str:
    """'' if ``got`` is what ``hook`` must return; else what it is, for the error line."""
    from qa2core.hooks.compose import Contribution

    if got is None:
        return "nothing" if hook in ("qa2_collect", "qa2_layout") else ""
    if isinstance(got, Claim) and (isinstance(got.score, bool) or not isinstance(got.score, int)):
        return f"Claim with a {type(got.score).__name__} score"
    if isinstance(got, Contribution) and hook == "qa2_contribute":
        return (_seq(got.placements, Placement, "Contribution.placements")
                or _seq(got.findings, Finding, "Contribution.findings"))
    if hook in ("qa2_detect", "qa2_ous_uids", "qa2_contribute"):
        return "" if isinstance(got, results()[hook][0]) else type(got).__name__
    if hook == "qa2_collect" and isinstance(got, Collection):
        return (_seq(got.items, Collected, "Collection.items")
                or _seq(got.findings, Finding, "Collection.findings"))
    return _seq(got, results()[hook][0])


def problems(pm: pluggy.PluginManager, plugin: object, name: str) -> list[str]:
    """Each mistake in ``plugin``'s hooks, one line each, before pluggy sees it."""
    out = []
    for attr in sorted(a for a in dir(plugin) if a.startswith("qa2_")):
        func = getattr(plugin, attr, None)
        if not callable(func):
            continue
        if pm.parse_hookimpl_opts(plugin, attr) is None:
            out.append(f"plugin {name!r}: {attr} is not marked @hookimpl, so qa2 never calls it; "
                       "decorate it with qa2core.hookimpl (or rename it)")
        elif attr not in SPECS:
            near = difflib.get_close_matches(attr, SPECS, n=1)
            hint = f"; did you mean {near[0]}?" if near else f"; hooks are {', '.join(SPECS)}"
            out.append(f"plugin {name!r}: unknown hook {attr!r}{hint}")
        else:
            try:
                taken = [p.name for p in inspect.signature(func).parameters.values()
                         if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
            except (TypeError, ValueError):
                continue
            for arg in (a for a in taken if a not in SPECS[attr]):
                out.append(f"plugin {name!r}: hook {attr} takes argument {arg!r}, which qa2 never "
                           f"gives ({attr} gets: {', '.join(SPECS[attr])})")
    return out


def one_line(exc: pluggy.PluginValidationError, name: str) -> str:
    """pluggy's own refusal (several lines, a repr) as one line naming the plugin."""
    return f"plugin {name!r}: " + " ".join(str(exc).split())


@contextlib.contextmanager
def captured(name: str, say: Callable[[str], None]) -> Iterator[None]:
    """A hook's stdout becomes ``qa2: plugin NAME: line`` on stderr: ``--json`` stays JSON.
    Both ``print`` (sys.stdout) and, in the main thread, writes to file descriptor 1
    (``os.write``, a program the hook starts) are caught."""
    buffer, raw = io.StringIO(), bytearray()
    try:
        with _fd1_captured(raw), contextlib.redirect_stdout(buffer):
            yield
    finally:  # said even when the hook failed: its output may say why
        for line in (buffer.getvalue() + raw.decode(errors="replace")).splitlines():
            say(f"qa2: plugin {name}: {line}")


@contextlib.contextmanager
def _fd1_captured(got: bytearray) -> Iterator[None]:
    """File descriptor 1 sent to an anonymous in-memory file (``memfd``, Linux) while the block
    runs; its bytes are added to ``got`` afterwards. Nothing is written to disk, so a hook call
    adds no write of qa2's own (the fault tests count them). Only the main thread swaps: fd 1 is
    the process's, and jobs running side by side in threads (qa2 batch on Dask) would swap it
    under each other. Without a usable fd 1 (closed), nothing is swapped."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        sink = _anonymous_file()
        try:
            os.dup2(sink, 1)
            try:
                yield
            finally:
                os.dup2(saved, 1)
                os.lseek(sink, 0, os.SEEK_SET)
                got += os.read(sink, 1 << 20)  # a hook's chatter, not data: the first MiB
        finally:
            os.close(sink)
    finally:
        os.close(saved)


def _anonymous_file() -> int:
    if hasattr(os, "memfd_create"):
        return os.memfd_create("qa2-hook-stdout", getattr(os, "MFD_CLOEXEC", 0))
    import tempfile

    fd, name = tempfile.mkstemp(prefix="qa2-hook-stdout-")
    os.unlink(name)
    return fd


@contextlib.contextmanager
def running(plugins: Any, plugin: str, hook: str, root: Any) -> Iterator[None]:
    """One hook call: its stdout kept off stdout, its time noted, its exception attributed, and
    with ``plugins.guard`` (qa2core.testing) a write below ORIGPATH failed."""
    from qa2core import messages

    before = fingerprint(root) if plugins.guard and root else None
    failed = f"plugin {plugin!r} failed in {hook}:"
    with captured(plugin, messages.say), plugins.windows.timing(plugin, hook):
        try:
            yield
        except Exception as exc:  # a plugin bug, reported with the plugin's name
            raise PluginFailed(f"{failed} {exc!r}") from exc
    if before is not None and (changed := wrote(before, fingerprint(root))):
        raise PluginFailed(f"{failed} wrote into ORIGPATH ({', '.join(changed[:5])}): hooks never "
                           "write; the core owns all file I/O")


class Windows:
    """When each hook ran: a source rewritten during a run is blamed on the hook running then."""

    def __init__(self) -> None:
        self.spans: list[tuple[int, int, str, str]] = []

    @contextlib.contextmanager
    def timing(self, plugin: str, hook: str) -> Iterator[None]:
        start = time.time_ns()
        try:
            yield
        finally:
            self.spans.append((start, time.time_ns(), plugin, hook))
            del self.spans[:-1000]

    def blame(self, exc: Qa2Error) -> Qa2Error:
        """``exc`` with a line naming the hook that ran when its file last changed, if one did."""
        path = str(exc).partition(": source changed while packaging")[0]
        try:
            when = os.lstat(path).st_mtime_ns
        except OSError:
            return exc
        hit = next(((p, h) for s, e, p, h in reversed(self.spans)
                    if s - SLACK_NS <= when <= e + SLACK_NS), None)
        if hit is None:
            return exc
        line = (f"{path} changed while plugin {hit[0]!r} ran {hit[1]}: hooks never write; "
                f"fix the plugin (or disable it with QA2_DISABLE_PLUGINS={hit[0]})")
        blamed = type(exc)(f"{exc}; {line}", lines=(*exc.lines, line), plugin=hit[0])
        return blamed


def fingerprint(root: Any) -> dict[str, tuple]:
    """(mode, size, mtime) of everything below ``root``: cheap, for the testing guard (listdir,
    not scandir: the guard must not count as the run's own directory listings)."""
    state: dict[str, tuple] = {}
    todo = [""]
    while todo:
        rel = todo.pop()
        try:
            names = os.listdir(os.path.join(str(root), rel))
        except OSError:
            continue
        for entry in names:
            sub = f"{rel}/{entry}" if rel else entry
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(str(root), sub))
                state[sub] = (st.st_mode, st.st_size, st.st_mtime_ns)
                if stat.S_ISDIR(st.st_mode):
                    todo.append(sub)
    return state


def wrote(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def no_impl(pm: pluggy.PluginManager, plugin: str, hook: str) -> bool:
    caller = getattr(pm.hook, hook, None)
    return caller is None or not any(i.plugin_name == plugin for i in caller.get_hookimpls())


def contributor(pm: pluggy.PluginManager, plugin: str) -> bool:
    """A plugin that only contributes (``qa2_contribute``, no ``qa2_detect``): its rules run on
    every package and in every verify, as a cross-cutting plugin's do."""
    return no_impl(pm, plugin, "qa2_detect") and not no_impl(pm, plugin, "qa2_contribute")


def claims_json(ranked: Sequence[Any]) -> list[dict]:
    return [{"plugin": r.plugin, "score": r.claim.score, "reason": r.claim.reason,
             "evidence": list(r.claim.evidence)} for r in ranked]
