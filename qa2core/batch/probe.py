"""Is ``--scheduler ADDRESS`` a Dask scheduler that answers? Asked before the ledger is opened:
an address that is not one, or a scheduler that does not answer within :data:`TIMEOUT_S`, is a
usage error (exit 2), and nothing is recorded. An HTTP server (the dashboard's port), a closed
port and a word that is no address are each told apart from a scheduler in seconds.
"""

from __future__ import annotations

import asyncio
from typing import Any

from qa2core.errors import UsageError

TIMEOUT_S = 8.0
SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")


def _refuse(address: str, why: str) -> UsageError:
    return UsageError(f"--scheduler {address}: {why}; give a running Dask scheduler's address "
                      "(tcp://HOST:8786, as `dask scheduler` prints it) [batch.scheduler]")


def check_scheduler(address: str, timeout: float = TIMEOUT_S) -> dict[str, Any]:
    """The scheduler's identity (``{"type": "Scheduler", "workers": {...}, ...}``), or
    :class:`UsageError` within ``timeout`` seconds."""
    from distributed.comm import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address)
        parse_host_port(location)
    except ValueError as exc:
        raise _refuse(address, f"not a scheduler address ({exc})") from None
    if scheme not in SCHEMES:
        raise _refuse(address, f"{scheme}:// is not a Dask protocol (a dashboard's http address?)")
    try:
        identity = asyncio.run(asyncio.wait_for(_identity(address, timeout), timeout))
    except (TimeoutError, asyncio.TimeoutError):
        raise _refuse(address, f"no Dask scheduler answered within {timeout:g} s (a dashboard or "
                      "another server on that port?)") from None
    except (OSError, ValueError, TypeError) as exc:
        raise _refuse(address, f"cannot reach a Dask scheduler there ({exc})") from None
    except Exception as exc:  # comm errors of distributed, e.g. a closed port
        raise _refuse(address, f"cannot reach a Dask scheduler there "
                      f"({type(exc).__name__}: {exc})") from None
    if not isinstance(identity, dict) or identity.get("type") != "Scheduler":
        kind = identity.get("type") if isinstance(identity, dict) else type(identity).__name__
        raise _refuse(address, f"what answers there is not a Dask scheduler ({kind})")
    return identity


async def _identity(address: str, timeout: float) -> Any:
    from distributed.comm import connect

    comm = await connect(address, timeout=timeout / 2)
    try:
        await comm.write({"op": "identity", "reply": True})
        return await comm.read()
    finally:
        await comm.close()
