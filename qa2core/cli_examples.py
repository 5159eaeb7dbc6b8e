"""The examples each ``qa2 COMMAND --help`` prints: real calls, run as printed by
tests/test_help_examples.py."""

from __future__ import annotations

EXAMPLES = {
    "package": (
        "qa2 package red/IRC10216_setup3_b6 2015.1.00229.S --readme README.header.txt "
        "--piscript ~/qa2mirror/ --style cycle3-nopipe",
        "qa2 package red/IRC10216_setup3_b6 2015.1.00229.S --piscript ~/qa2mirror/ --mode copy --dry-run",
    ),
    "stage": (
        "qa2 stage 2013.1.00911.S_2015_08_07T16_10_05.732 2013.1.00911.S --piscript ~/qa2mirror/",
        "qa2 stage 2013.1.00911.S_2015_08_07T16_10_05.732 2013.1.00911.S --piscript ~/qa2mirror/ "
        "--mode hard --dry-run",
    ),
    "verify": (
        "qa2 verify 2015.1.00229.S",
        "qa2 verify 2015.1.00229.S --for-ingestion --json",
    ),
    "tar": (
        "qa2 tar 2015.1.00229.S --ous-uids uid://A001/X87c/X67,uid://A001/X87c/X68,uid://A001/X87c/X69",
    ),
    "detect": (
        "qa2 detect red/IRC10216_setup3_b6",
        "qa2 detect red/IRC10216_setup3_b6 --json",
    ),
    "plugins": (
        "qa2 plugins",
        "QA2_DISABLE_PLUGINS=mysite qa2 plugins --json",
    ),
    "styles": (
        "qa2 styles",
        "qa2 styles --json",
    ),
    "inspect": (
        "qa2 inspect red/IRC10216_setup3_b6",
        "qa2 inspect red/IRC10216_setup3_b6 --json",
    ),
    "selftest": (
        "qa2 selftest",
        "qa2 selftest --workdir /tmp/qa2-selftest",
    ),
    "batch": (
        "qa2 batch reprocessing.toml --check",
        "qa2 batch reprocessing.toml",
        "qa2 batch reprocessing.toml --status",
        "qa2 batch reprocessing.toml --retry-failed",
        "qa2 batch reprocessing.toml --only verify:2015.1.00229.S --json",
        "qa2 batch reprocessing.toml --scheduler tcp://head-node:8786 --per-filesystem 2 --json",
    ),
}


def _examples(command: str) -> str:
    """The epilog of a command's --help: real calls (Click keeps lines after \\b as they are)."""
    return "\b\nExamples:\n" + "\n".join(f"  {e}" for e in EXAMPLES[command])
