"""``check_plugin``: the one call an ARC puts in its tests. It packages a sample with the plugin
(and the plugins it wraps or contributes to), verifies the package, and fails on each trap:

* a hook that prints, or writes below ORIGPATH (the manager's guard);
* a package its plugin does not claim back in ``qa2 verify`` (the recorded plugin must claim);
* a wrapper whose claim does not pass the wrapped plugin's context on;
* a wrapper that drops the wrapped plugin's findings (on the package, and on an empty member);
* items the plugin leaves unclassified that the wrapped plugin (or the winner alone) classifies;
* rules that do not run in the rehearsal: fake mode must find what the real run finds, and a
  ``broken`` sample must be refused in both, with the same lines.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

from qa2core.errors import Qa2Error
from qa2core.hooks.manager import Qa2Plugins, get_plugin_manager
from qa2core.hooks.model import PackageView


@dataclass(frozen=True)
class Checked:
    """What the check saw, for further asserts: the real run's report and verify's."""

    report: Any
    verified: Any
    rehearsal: Any


def plugin_manager(plugins: dict[str, object], guard: bool = True) -> Qa2Plugins:
    """A manager without installed plugins, holding ``plugins`` (name -> module or object); with
    ``guard``, a hook that writes below ORIGPATH fails its call."""
    pm = get_plugin_manager(entrypoints=False, guard=guard)
    for name, plugin in plugins.items():
        pm.register(plugin, name=name)
    return pm


def _fail(lines: list[str]) -> None:
    if lines:
        raise AssertionError("plugin check failed:\n  " + "\n  ".join(lines))


def _key(findings) -> set[tuple[str, str, str]]:
    return {(str(f.level), f.rule, f.path) for f in findings}


def _root(sample: Any) -> Path:  # a directory, or a sampledata.Sample (its .root; not Path.root)
    return Path(sample) if isinstance(sample, str | os.PathLike) else Path(sample.root)


def _wrapped_context(context: Any, inner: Any) -> bool:
    if context == inner:
        return True
    return is_dataclass(context) and any(getattr(context, f.name) == inner for f in fields(context))


def check_plugin(plugin: object, name: str, sample: Any, workdir: Path, *,
                 others: dict[str, object] | None = None, wraps: str | None = None,
                 broken: Any = None, style: str = "", piscript: Path | None = None,
                 readme: Path | None = None, project: str = "2015.1.00123.S") -> Checked:
    """Check ``plugin`` (registered as ``name`` beside ``others``) on ``sample`` (a directory,
    or a :class:`~qa2core.testing.sampledata.Sample`); ``wraps`` names the plugin of ``others``
    it wraps by delegation; ``broken`` is an input its rules must refuse. Raises AssertionError
    listing every trap met; returns :class:`Checked`."""
    from qa2core import engine
    from qa2core.checks.verify import verify
    from qa2core.testing import tree_state

    root = _root(sample)
    piscript = piscript or getattr(sample, "piscript", None)
    readme = readme or getattr(sample, "readme_header", None)
    pm = plugin_manager({**(others or {}), name: plugin})
    before, problems, err = tree_state(root), [], io.StringIO()
    opts = {"piscript": piscript, "readme_path": readme, "style": style, "plugins": pm}

    def run(dest: str, **kw: Any) -> Any:
        (workdir / dest).mkdir(parents=True, exist_ok=True)
        return engine.package(root, workdir / dest / project, **{**opts, **kw})

    if wraps:  # claims first: a context not passed on breaks the wrapped hooks later
        problems += _claims(pm, name, wraps, engine.load_delivery(root, style))
        _fail(problems)
    with contextlib.redirect_stderr(err):
        try:
            rehearsal = run("fake", mode="fake", dry_run=True)
            report = run("real", mode="copy")
        except Qa2Error as exc:
            _fail([f"the sample is refused: {line}" for line in exc.lines])
        verified = verify(workdir / "real" / project, plugins=pm)
    problems += [f"a hook printed: {ln}" for ln in err.getvalue().splitlines()
                 if ln.startswith("qa2: plugin ")]
    if tree_state(root) != before:
        problems.append(f"{root}: the sample changed while it was packaged")
    if not verified.ok or any(f.rule == "structure.plugin" for f in verified.findings):
        problems += [f"verify: {f.line()}" for f in verified.findings if str(f.level) != "INFO"]
    if report.plugin not in (verified.plugin or "").split(","):
        problems.append(f"verify judged the package by {verified.plugin!r}, not by {report.plugin!r} "
                        "that made it: claim your own packages under Purpose.VERIFY")
    if _key(rehearsal.findings) != _key(report.findings):
        problems.append("the rehearsal (fake) and the real run find different things: "
                        f"{sorted(_key(rehearsal.findings) ^ _key(report.findings))}; content "
                        "rules run in every mode (PackageView.open works while planning)")
    alone = run("alone", mode="fake", dry_run=True, plugins=plugin_manager(others)) if others else None
    if alone and (more := sorted(set(report.unclassified) - set(alone.unclassified))):
        problems.append(f"items left unclassified that {alone.plugin} alone classifies: {more}")
    if wraps:
        problems += _wrapper(pm, name, wraps, engine.load_delivery(root, style), workdir / "real" / project,
                             report)
    if broken is not None:
        problems += _refused(_root(broken), workdir, project, opts, pm)
    _fail(problems)
    return Checked(report, verified, rehearsal)


def _claims(pm: Qa2Plugins, name: str, wraps: str, delivery: Any) -> list[str]:
    ranked = {r.plugin: r.claim for r in pm.claims(delivery)}
    mine, inner = ranked.get(name), ranked.get(wraps)
    if mine is None or inner is None:
        return [f"on the sample, {name} claims {mine} and {wraps} claims {inner}: both must"]
    if not _wrapped_context(mine.context, inner.context):
        return [f"{name}'s claim does not pass {wraps}'s Claim.context on"]
    return []


def _wrapper(pm: Qa2Plugins, name: str, wraps: str, delivery: Any, pack: Path, report: Any) -> list[str]:
    out: list[str] = []
    ranked = {r.plugin: r.claim for r in pm.claims(delivery)}
    mine, inner = ranked[name], ranked[wraps]
    member = pack / report.member
    files = tuple(sorted(p.relative_to(member).as_posix() for p in member.rglob("*") if p.is_file()))
    for listing in (files, ("README",)):
        view = PackageView(listing, delivery.style, name, delivery.options.mode,
                           open=lambda rel, m=member, fs=listing: (m / rel).open("rb") if rel in fs
                           and (m / rel).is_file() else None)
        theirs = _key(f for r in pm._call("qa2_validate", wraps, view=view, context=inner.context,
                                          plugin=wraps) for f in r)
        ours = _key(f for r in pm._call("qa2_validate", name, view=view, context=mine.context,
                                        plugin=name) for f in r)
        if lost := sorted(theirs - ours):
            out.append(f"{name}'s qa2_validate drops {wraps}'s findings {lost}: return them too")
    return out


def _refused(broken: Path, workdir: Path, project: str, opts: dict, pm: Qa2Plugins) -> list[str]:
    from qa2core import engine

    lines = {}
    for mode in ("fake", "copy"):
        (workdir / f"broken-{mode}").mkdir(parents=True, exist_ok=True)
        try:
            engine.package(broken, workdir / f"broken-{mode}" / project, **{**opts, "plugins": pm},
                           mode=mode, dry_run=True)
            lines[mode] = ()
        except Qa2Error as exc:
            lines[mode] = exc.lines
    if not lines["copy"]:
        return [f"{broken}: the broken sample is not refused: do the plugin's rules run?"]
    if lines["fake"] != lines["copy"]:
        return [f"{broken}: the rehearsal refuses {list(lines['fake'])}, the real run "
                f"{list(lines['copy'])}: rules must run in every mode"]
    return []
