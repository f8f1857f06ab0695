"""Which classes of a COCO or YOLO dataset are people.

The rule, the same for every layout: the ``classes`` the user names (names or ids); otherwise the
dataset's single class; otherwise the class named person / people / pedestrian (any case, plural
too). Anything else is refused with the list of classes and how to choose, because silently
training on cars as "people" is worse than stopping.

A class named ``ignore`` (or ``ignored``) is read as ignore regions rather than people: YOLO has
no ignore flag, and this is how :mod:`sspnet_cli.data.writers` stores them there.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from sspnet_cli.errors import InputError

PERSON_NAMES = frozenset({"person", "persons", "people", "pedestrian", "pedestrians"})
IGNORE_NAMES = frozenset({"ignore", "ignored"})


@dataclass(frozen=True)
class ClassChoice:
    """Class ids read as people and as ignore regions; the others of ``known`` are skipped."""

    person: frozenset[int]
    ignore: frozenset[int]
    known: frozenset[int]


def _describe(names: Mapping[int, str]) -> str:
    return ", ".join(f"{i}: {n!r}" for i, n in sorted(names.items()))


def choose_classes(
    names: Mapping[int, str],
    classes: Iterable[str | int] | None,
    source: object,
    option: str = "classes",
    all_people: bool = False,
) -> ClassChoice:
    """Apply the class rule to ``names`` (class id -> name) of the file ``source``.

    ``classes`` are names (any case) or ids; ``all_people`` takes every class but the ignore
    ones (TinyPerson's ``sea_person`` / ``earth_person``). ``option`` is what the error message
    tells the user to set. Raises :class:`InputError` when the rule finds no single answer.
    """
    known = frozenset(names)
    ignore = frozenset(i for i, n in names.items() if str(n).strip().lower() in IGNORE_NAMES)
    candidates = {i: n for i, n in names.items() if i not in ignore}
    how = f"choose with {option}=[name or id, ...]"
    if classes is not None:
        if isinstance(classes, (str, int)):
            classes = [classes]
        by_name = {str(n).strip().lower(): i for i, n in names.items()}
        chosen: set[int] = set()
        for c in classes:
            if isinstance(c, int) and not isinstance(c, bool) and c in names:
                chosen.add(c)
            elif isinstance(c, str) and c.strip().lower() in by_name:
                chosen.add(by_name[c.strip().lower()])
            elif isinstance(c, str) and c.strip().lstrip("-").isdigit() and int(c) in names:
                chosen.add(int(c))
            else:
                raise InputError(source, f"no class {c!r}; classes are {_describe(names)}")
        return ClassChoice(frozenset(chosen), ignore - chosen, known)
    if all_people or len(candidates) == 1:
        return ClassChoice(frozenset(candidates), ignore, known)
    matches = [i for i, n in candidates.items() if str(n).strip().lower() in PERSON_NAMES]
    if len(matches) == 1:
        return ClassChoice(frozenset(matches), ignore, known)
    if not candidates:
        raise InputError(source, "no classes defined; give the person class with " + how)
    problem = "several classes look like people" if matches else "no class named person/people/pedestrian"
    raise InputError(source, f"{problem}; classes are {_describe(names)}; {how}")
