"""The plugin author's manual: every hook qa2 calls, when, on whom, and what it must return.

A plugin is a module (or object) with functions decorated by ``qa2core.hookimpl`` and named
like the specs below; it is found through the entry-point group ``qa2``::

    [project.entry-points.qa2]
    mysite = "qa2_mysite.plugin"

Rules that hold for every hook:

* Hooks never write to disk and never print. The core owns all file I/O: it scans ORIGPATH,
  copies, links, compresses, writes README, ticket and manifest. Plugins return data.
* Hooks are keyword-called; an implementation may accept fewer arguments than the spec.
* An exception raised in a hook is a plugin bug: the run stops with ``PluginFailed`` naming the
  plugin. It is never read as "no claim".
* Results are frozen dataclasses from :mod:`qa2core.model`, never dicts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from collections.abc import Sequence

    from qa2core.model import Claim, Collected, Delivery, Finding, PackageView, Placement
    from qa2core.ous import OusUids

_hookspec = pluggy.HookspecMarker("qa2")


class Qa2Specs:
    @_hookspec
    def qa2_detect(self, delivery: Delivery) -> Claim | None:
        """Say whether this plugin can package ``delivery``, and how sure it is.

        Called on **every** plugin, before anything else. The core ranks the claims: the
        highest ``Claim.score`` wins; a tie at the top, or no claim at all, stops the run with
        a list of every claim (``--plugin NAME`` skips ranking, but that plugin must still
        claim). Use the scale in :mod:`qa2core.model`: ``FALLBACK`` (10), ``GENERIC`` (50),
        ``SPECIFIC`` (80), ``OVERRIDE`` (90).

        Must be cheap: look at ``delivery.items`` (names, item types, table types, sizes).

        :param delivery: the scanned input: ``root``, ``items``, resolved ``style``, options
        :returns: a :class:`~qa2core.model.Claim`, or ``None`` to decline
        """

    @_hookspec
    def qa2_collect(self, delivery: Delivery) -> Sequence[Collected]:
        """Classify the items of ``delivery``: what each one is, or why it stays out.

        Called on the **winning** plugin only. Return one :class:`~qa2core.model.Collected`
        per item you have an opinion on: ``kind`` names what it is (your vocabulary, used again
        by your ``qa2_layout``); ``skip="reason"`` leaves it out on purpose; ``kind=UNCLASSIFIED``
        (or leaving an item out of the result) makes the core report it to the user as
        unclassified and not package it. Nothing is ever dropped silently.

        :param delivery: as for ``qa2_detect``
        :returns: a sequence of ``Collected``
        """

    @_hookspec
    def qa2_layout(self, delivery: Delivery, collected: Sequence[Collected]) -> Sequence[Placement]:
        """Say where each collected item goes in the member directory, and how.

        Called on the **winning** plugin only, with the non-skipped, classified items of its
        own ``qa2_collect``. Each :class:`~qa2core.model.Placement` names a member-relative
        ``dest`` (``"script/scriptForImaging.py"``) and an ``action``: ``COPY``, ``GZIP``
        (dest ends ``.gz``), ``TGZ`` (one or more sources, each archived under its base name)
        or ``EMPTY`` (a dummy that must exist). The core adds ``README`` and
        ``script/scriptForPI.py`` itself; do not place them. Two placements with one ``dest``
        stop the run.

        :param delivery: as for ``qa2_detect``
        :param collected: this plugin's classified items, skipped and unclassified ones removed
        :returns: a sequence of ``Placement``
        """

    @_hookspec
    def qa2_validate(self, view: PackageView, plugin: str) -> Sequence[Finding] | None:
        """Check a member directory, as planned (before anything is written) or on disk.

        Called on **every** plugin: check what you know about. ``plugin`` is the name of the
        plugin that packaged (or, for ``qa2 verify``, claims) the package; return ``None``
        when the rules you hold are not for it. Findings at level ``ERROR`` refuse the run
        (``ticket``, ``copy``, ``hard``) or fail ``qa2 verify``; ``WARN`` and ``INFO`` are
        reported.

        :param view: member-relative file names, the style, and a ``read`` function for content
        :param plugin: the name of the packaging plugin
        :returns: a sequence of :class:`~qa2core.model.Finding`, or ``None``
        """

    @_hookspec
    def qa2_ous_uids(self, delivery: Delivery) -> OusUids | None:
        """Give the real SOUS, GOUS and MOUS UIDs of ``delivery`` when the input names them.

        Called on the **winning** plugin only, when the user gave no ``--ous-uids``. Return
        an :class:`~qa2core.ous.OusUids` (sanitized UIDs, e.g. from a pipeline run's
        ``SOUS_``/``GOUS_``/``MOUS_`` directories) and the package gets ingestion-ready
        ``science_goal.<SOUS>/group.<GOUS>/member.<MOUS>`` names instead of the placeholders;
        return ``None`` (or do not implement it) to keep the placeholders.

        :param delivery: as for ``qa2_detect``
        :returns: :class:`~qa2core.ous.OusUids` or ``None``

        .. versionadded:: 0.1
        """
