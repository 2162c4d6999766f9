"""Why a streaming selector's policy is not loaded, said once in words a person can act on.

A selector whose policy never loads serves its baseline (or first provider) and logs
nothing per request; ``warn_not_loaded`` writes one WARNING for it: the name it looked
for, the store it looked in, and the names that exist there (with the closest one),
or why the store could not be asked. ``StreamingSource`` runs it once, off the request
path (listing the policies is a network call).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Sequence

from policy_store import PolicyReader

log = logging.getLogger(__name__)


def not_loaded_message(
    policy: str,
    served: str | None,
    where: str,
    names: Sequence[str] | None,
    error: str | None = None,
) -> str:
    """The warning for ``policy`` not loaded from ``where``; ``names`` None = store unreachable.

    >>> not_loaded_message("provider_selction", "gpt-4", "Redis at redis://h:6379/0 "
    ...                    "(prefix 'rlc')", ["provider_selection"])  # doctest: +ELLIPSIS
    "policy 'provider_selction' not found in Redis at ... did you mean 'provider_selection'? ..."
    """
    serving = (
        f"serving {served!r} (the baseline or first provider, unlogged) until it loads"
        if served is not None
        else "nothing can be served until it loads (pass providers=[...] or a baseline)"
    )
    if names is None:
        return f"policy {policy!r} not loaded: {where} unreachable ({error}); {serving}"
    if policy in names:
        return (
            f"policy {policy!r} exists in {where} but could not be loaded (details at DEBUG "
            f"from the policy_store logger); {serving}"
        )
    there = ", ".join(repr(n) for n in names) if names else "none"
    close = difflib.get_close_matches(policy, list(names), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (
        f"policy {policy!r} not found in {where}; policies there: {there}; {hint}{serving}; "
        f"check the name given to connect() (or RL_COMMONS_POLICY), or create it with "
        f"`rl-commons policy create {policy} --arms ... --features ...`"
    )


def warn_not_loaded(reader: PolicyReader, served: str | None) -> None:
    """Ask ``reader``'s store which policies exist and log why ``reader.policy`` is missing
    (nothing if it loaded meanwhile)."""
    store = reader.store
    url, prefix = getattr(store, "url", None), getattr(store, "prefix", None)
    where = f"Redis at {url} (key prefix {prefix!r})" if url else type(store).__name__
    try:
        names: list[str] | None = sorted(store.list_policies())
        error = None
    except Exception as exc:
        names, error = None, str(exc)
    if reader.view is None:
        log.warning("%s", not_loaded_message(reader.policy, served, where, names, error))
