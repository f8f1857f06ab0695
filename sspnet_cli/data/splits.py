"""Split names: ``val`` and ``valid`` (and ``validation``) are one split under three names."""
from __future__ import annotations

from typing import Iterable

from sspnet_cli.errors import InputError

_ALIASES = (frozenset({"val", "valid", "validation"}),)


def split_aliases(name: str) -> list[str]:
    """``name`` first, then the other names of the same split."""
    low = name.lower()
    for group in _ALIASES:
        if low in group:
            return [name] + sorted(group - {low})
    return [name]


def resolve_split(requested: str, available: Iterable[str], source: object) -> str:
    """The split of ``available`` that ``requested`` means: the same name, an alias of it (any
    case), or the one name that starts with it (``train`` -> ``train2017``).

    Raises :class:`InputError` on ``source`` listing the splits found when none or several fit.
    """
    names = sorted(set(available))
    by_lower: dict[str, list[str]] = {}
    for n in names:
        by_lower.setdefault(n.lower(), []).append(n)
    if requested in names:
        return requested
    for alias in split_aliases(requested):
        if len(by_lower.get(alias.lower(), [])) == 1:
            return by_lower[alias.lower()][0]
    prefixed = sorted({n for alias in split_aliases(requested) for n in names if n.lower().startswith(alias.lower())})
    if len(prefixed) == 1:
        return prefixed[0]
    found = ", ".join(names) if names else "none"
    if prefixed:
        raise InputError(source, f"split {requested!r} is ambiguous: {', '.join(prefixed)}; splits found: {found}")
    raise InputError(source, f"no split {requested!r}; splits found: {found}")
