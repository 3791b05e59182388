"""Domains: the task type of a sample, which routes it to its experts and output head.

Each domain expects one kind of action: ``gui`` (click, type, scroll, ...), ``continuous``
(an embodied action vector) or ``discrete`` (one name from an action set). The defaults
are ``gui``, ``embodied`` and ``discrete``; a dataset's manifest may declare more (for
example ``{"navigation": "discrete"}``), and a declared kind of ``None`` accepts any action.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from ..actions import ContinuousAction, DiscreteAction
from ..actions.gui import GUI_ACTION_TYPES

ACTION_KINDS: tuple[str, ...] = ("gui", "continuous", "discrete")

#: Domain name -> the kind of action its samples carry.
DEFAULT_DOMAINS: dict[str, str] = {"gui": "gui", "embodied": "continuous", "discrete": "discrete"}


def action_kind(action: object) -> str:
    """``"gui"``, ``"continuous"`` or ``"discrete"`` for a typed action."""
    if isinstance(action, ContinuousAction):
        return "continuous"
    if isinstance(action, DiscreteAction):
        return "discrete"
    if type(action) in GUI_ACTION_TYPES.values():
        return "gui"
    raise TypeError(f"not an action: {action!r}")


def check_domain_declarations(declared: Mapping[str, str | None]) -> dict[str, str | None]:
    """Validate extra domains declared by a manifest or a writer (name -> action kind or None)."""
    out: dict[str, str | None] = {}
    for name, kind in declared.items():
        if not isinstance(name, str) or not name or not name.replace("_", "").isalnum() or name != name.lower():
            raise ValueError(f"domain name {name!r} must be a non-empty lower_snake_case word")
        if kind is not None and kind not in ACTION_KINDS:
            raise ValueError(f"domain {name!r}: action kind {kind!r} is not one of {', '.join(ACTION_KINDS)} or None")
        default = DEFAULT_DOMAINS.get(name)
        if default is not None and kind != default:
            raise ValueError(
                f"domain {name!r} is built in with action kind {default!r}; it cannot be redeclared as {kind!r}"
            )
        out[name] = kind
    return out


def known_domains(declared: Mapping[str, str | None] | None = None) -> dict[str, str | None]:
    """The default domains plus the ``declared`` ones (name -> action kind, None for any)."""
    known: dict[str, str | None] = dict(DEFAULT_DOMAINS)
    known.update(check_domain_declarations(declared or {}))
    return known


def domain_problems(domain: str, action: object | None, known: Mapping[str, str | None]) -> list[str]:
    """Why ``domain`` (with its ``action``, when it parsed) is not acceptable; empty when it is."""
    if domain not in known:
        hint = difflib.get_close_matches(domain, list(known), n=1)
        did_you_mean = f"; did you mean {hint[0]!r}?" if hint else ""
        return [
            f"{domain!r} is not a known domain (known: {', '.join(sorted(known))}){did_you_mean} "
            f'New domains are declared in the manifest\'s "domains".'
        ]
    expected = known[domain]
    if action is None or expected is None:
        return []
    kind = action_kind(action)
    if kind != expected:
        what = kind if action.type == kind else f"{kind} ({action.type})"
        return [f"{domain!r} expects {expected} actions, but the action is {what}"]
    return []
