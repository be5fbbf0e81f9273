"""Griffe extension: turn the docstrings' Sphinx roles into API-reference links.

The docstrings follow numpydoc and cross-reference with Sphinx roles
(``:func:`allocate```, ``:meth:`~KnapsackAllocator.plan```). mkdocstrings
renders Markdown, where a role would show as literal text. This extension
rewrites each role, when the package is loaded, into an *optional* autorefs
link: a link when the target is on a rendered page, plain code otherwise.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(
    r":(?:py:)?(?:func|class|meth|attr|data|mod|exc|obj):`(?P<tilde>~?)(?P<target>[^`]+)`"
)


def resolve(obj: griffe.Object, target: str) -> str:
    """Full path of ``target`` as Python would look it up from ``obj``'s scope.

    Parameters
    ----------
    obj : griffe.Object
        The object whose docstring holds the reference.
    target : str
        The role's target, e.g. ``allocate`` or ``KnapsackAllocator.plan``.

    Returns
    -------
    str
        The resolved path, or ``target`` unchanged when it cannot be resolved.
    """
    head, _, rest = target.partition(".")
    try:
        path = obj.resolve(head)
    except griffe.NameResolutionError:
        return target
    return f"{path}.{rest}" if rest else path


def link(obj: griffe.Object, match: re.Match[str]) -> str:
    """Write one role occurrence as an optional autorefs link."""
    target = match["target"]
    title = html.escape(target.rsplit(".", 1)[-1] if match["tilde"] else target)
    identifier = html.escape(resolve(obj, target), quote=True)
    return f'<autoref identifier="{identifier}" optional><code>{title}</code></autoref>'


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring of the loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Rewrite the docstrings once the whole package, and so every name, is loaded."""
        self._rewrite(pkg, seen=set())

    def _rewrite(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(lambda match: link(obj, match), obj.docstring.value)
        for member in obj.members.values():
            if not member.is_alias:
                self._rewrite(member, seen)  # type: ignore[arg-type]
