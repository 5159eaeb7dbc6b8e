"""The plugin author's manual: every hook qa2 calls, when, on whom, and what it must return.

A plugin is a module (or object) with functions decorated by ``qa2core.hookimpl`` and named
like the specs below, found through the entry-point group ``qa2``::

    [project.entry-points.qa2]
    mysite = "qa2_mysite.plugin"

Rules for every hook:

* Hooks never write to disk and never print: the core owns all file I/O. Plugins return data.
* Hooks are called by keyword. An implementation takes only the arguments it wants (pluggy's
  opt-in arguments), so new arguments can be added to a spec without breaking any plugin.
* An exception, or a result of the wrong type, stops the run with one line:
  ``plugin NAME failed in HOOK: …``. It is never read as "no claim".
* Results are the frozen dataclasses of :mod:`qa2core.hooks.model`, never dicts.
* A plugin never needs the name it was registered under: the core decides whose hooks run.
* Two module flags: ``QA2_CROSS_CUTTING = True`` (its ``qa2_validate`` runs on every package)
  and ``QA2_STAGES = True`` (``qa2 stage`` accepts its inputs: pipeline runs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from collections.abc import Sequence

    from qa2core.batch import BatchExecutor, ExecutorSettings
    from qa2core.hooks.compose import Contribution
    from qa2core.hooks.model import Claim, Collected, Collection, Delivery, Finding, PackageView, Placement
    from qa2core.planning.ous import OusUids

_hookspec = pluggy.HookspecMarker("qa2")


class Qa2Specs:
    @_hookspec
    def qa2_detect(self, delivery: Delivery) -> Claim | None:
        """Say whether this plugin can package ``delivery``, and how sure it is.

        Called on **every** plugin first. The core ranks the claims: the highest score wins; a
        tie at the top, or no claim, stops the run listing every claim (``--plugin NAME`` skips
        the ranking, but that plugin must still claim). Scores: ``FALLBACK`` 10, ``GENERIC`` 50,
        ``SPECIFIC`` 80, ``OVERRIDE`` 90 (:mod:`qa2core.hooks.model`).

        Look only at names, item types, table types and sizes; never open a file here. Put what
        you work out into ``Claim.context``: the core hands it to your other hooks.

        :returns: a :class:`~qa2core.hooks.model.Claim`, or ``None`` to decline
        """

    @_hookspec
    def qa2_collect(self, delivery: Delivery, context: Any) -> Collection | Sequence[Collected]:
        """Classify the items of ``delivery``: what each one is, or why it stays out.

        Called on the **winner** only. One :class:`~qa2core.hooks.model.Collected` per item:
        ``kind`` is your word for it (your ``qa2_layout`` gets it back); ``skip="reason"``
        leaves it out on purpose; ``UNCLASSIFIED``, or no entry at all, is reported to the user
        as left out. Problems of the input itself (an unreadable PPR, an EB without its
        script) go into :class:`~qa2core.hooks.model.Collection` ``findings``; an ERROR refuses the
        run. This is the place to read small input files (a PPR), once.

        :param context: your ``Claim.context``
        :returns: a ``Collection``, or a plain sequence of ``Collected``
        """

    @_hookspec
    def qa2_layout(self, delivery: Delivery, collected: Sequence[Collected],
                   context: Any) -> Sequence[Placement]:
        """Say where each collected item goes in the member directory, and how.

        Called on the **winner** only, with its classified, non-skipped items. Each
        :class:`~qa2core.hooks.model.Placement` names a member-relative ``dest``
        (``"script/scriptForImaging.py"``) and an ``action``: ``COPY``, ``GZIP`` (dest ends
        ``.gz``), ``TGZ`` (sources archived under their base names) or ``EMPTY`` (a dummy that
        must exist). The core adds the README and the PI script; do not place them. Cycle >= 5
        styles name files after the member: ``delivery.options.member_token`` (``rename_dest``).

        :param delivery: the scanned input, as for ``qa2_detect``
        :param collected: this plugin's classified items, skipped and unclassified ones removed
        :param context: your ``Claim.context``
        :returns: a sequence of ``Placement``
        """

    @_hookspec
    def qa2_contribute(self, delivery: Delivery, winner: str, collected: Sequence[Collected],
                       placements: Sequence[Placement]) -> Contribution | None:
        """Add to a package this plugin does not win: extra placements, findings, or both.

        Called on **every plugin but the winner**, after the winner's ``qa2_layout`` (which
        still decides the layout). ``collected`` is the winner's verdict on every item,
        ``placements`` its layout. A contribution never takes a destination the winner placed,
        nor one another contributor placed: either refuses the run naming both plugins
        [compose.conflict]. Items a contribution places are no longer "not recognised".

        :param winner: the name of the plugin that packages ``delivery``
        :returns: a :class:`~qa2core.hooks.compose.Contribution`, or ``None`` (nothing to add)
        """

    @_hookspec
    def qa2_validate(self, view: PackageView, context: Any, plugin: str) -> Sequence[Finding] | None:
        """Check one member directory: as planned (before anything is written) or on disk.

        The same call in ``qa2 package`` and ``qa2 verify`` (``view.verifying`` tells them
        apart). Called on the plugin that made the member (in verify: the one the journal
        records, if it still claims it), the core's rules, and ``QA2_CROSS_CUTTING`` plugins.
        ``view.open(path)`` streams content in every mode, the rehearsal included (a file the
        run gzips opens as its source, not yet compressed); ``None`` for directories and made
        files. ``ERROR`` refuses the run, in every mode, or fails verify.

        :param context: the packaging plugin's ``Claim.context`` (``None`` for other plugins)
        :param plugin: name of the packaging plugin (kept for plugins written before 0.2)
        :returns: a sequence of :class:`~qa2core.hooks.model.Finding`, or ``None``
        """

    @_hookspec
    def qa2_ous_uids(self, delivery: Delivery, context: Any) -> OusUids | None:
        """Give the real SOUS, GOUS and MOUS UIDs when the input's names tell them.

        Called on the **winner** only, and only for ``--ous-uids auto``: the placeholders
        ``sg_ouss_id/group_ouss_id/member_ouss_id`` are the default (docs/contract.md), and an
        explicit ``--ous-uids SOUS,GOUS,MOUS`` is used as given. Return an
        :class:`~qa2core.planning.ous.OusUids` and the package gets
        ``science_goal.<SOUS>/group.<GOUS>/member.<MOUS>``; ``None`` (the input does not tell
        all three) refuses the run with a line naming your plugin and its claim's reason, so
        let that reason say what the input is.

        :param delivery: the scanned input, as for ``qa2_detect``
        :param context: your ``Claim.context``
        :returns: :class:`~qa2core.planning.ous.OusUids` or ``None``
        """

    @_hookspec
    def qa2_batch_executor(self, name: str, settings: ExecutorSettings) -> BatchExecutor | None:
        """Give the executor named ``name`` (``qa2 batch --executor NAME``), or ``None``.

        Called on every plugin when a ``qa2 batch`` campaign has work to run; the core's own
        ``dask`` answers last, and one plugin only may answer a name. Its ``run(tasks,
        on_event)`` runs each :class:`~qa2core.batch.Task` with
        :func:`qa2core.batch.worker.run_task` on a machine that sees the same paths, at most
        ``settings.per_filesystem`` tasks with one ``task.fs`` at once, and yields
        ``(task, result)`` as each ends. The jobs file, ledger, resume and summary stay the
        core's (docs/plugin-authoring.md, "Batch executors": a Slurm array, HTCondor).

        :param settings: :class:`~qa2core.batch.ExecutorSettings` (scheduler, workers, limit)
        :returns: a :class:`~qa2core.batch.BatchExecutor`, or ``None`` for another name
        """
