"""Host patterns with Ansible semantics: names, globs, ~regex, unions, intersections (&) and exclusions (!)."""

from __future__ import annotations

import fnmatch
import logging
import re
from typing import TYPE_CHECKING

from fleet.errors import PatternError
from fleet.inventory.models import is_ipv6

if TYPE_CHECKING:
    from fleet.inventory.models import Host, Inventory

# How one -H value is evaluated (Ansible's split_host_pattern + order_patterns + _evaluate_patterns):
#
#   "web*:&prod:!web03"  --split-->  ["web*", "&prod", "!web03"]
#        split on "," if the value contains one, else on ":" outside [...] (a lone IPv6 address stays whole)
#   --order-->  unions first, then &intersections, then !exclusions (["all"] is prepended if there is no union)
#   --fold-->   {} | web*  ->  & prod  ->  - web03
#
# Several -H values are evaluated independently and their results unioned; the result is in inventory order.
# A union or intersection term that matches nothing is an error; an exclusion that matches nothing only warns.

log = logging.getLogger(__name__)

_GLOB_CHARS = frozenset("*?[")
_HINT_COUNT = 5


def split_pattern(pattern: str) -> list[str]:
    """Split one -H value into terms: on ``,`` if it contains one, else on ``:`` (keeping IPv6 addresses whole)."""
    pattern = pattern.strip()
    if "," in pattern:
        parts = pattern.split(",")
    elif _is_address(pattern):
        parts = [pattern]
    else:
        parts = _split_colons(pattern)
    return [part.strip() for part in parts if part.strip()]


def order_terms(terms: list[str]) -> list[str]:
    """Unions, then intersections (``&``), then exclusions (``!``); only ``&``/``!`` terms imply ``all`` first."""
    unions = [t for t in terms if t[0] not in "&!"]
    intersections = [t for t in terms if t[0] == "&"]
    exclusions = [t for t in terms if t[0] == "!"]
    return (unions or ["all"]) + intersections + exclusions


def select(inventory: Inventory, patterns: list[str]) -> list[Host]:
    """Hosts selected by the -H values ``patterns`` (a union; ``[]`` means ``all``), in inventory order.

    Raises PatternError for a term that matches nothing, a malformed regex, or an empty final selection.
    """
    patterns = list(patterns) or ["all"]
    index = _Index(inventory)
    chosen: set[str] = set()
    for pattern in patterns:
        chosen |= _evaluate(index, pattern)
    if not chosen:
        raise PatternError("host pattern {} selects no hosts".format(", ".join('"{}"'.format(p) for p in patterns)))
    return [host for name, host in inventory.hosts.items() if name in chosen]


def _split_colons(pattern: str) -> list[str]:
    """Split on ``:`` outside ``[...]``; unlike Ansible's regex, an unbalanced ``[`` is kept, not dropped."""
    terms, start, depth = [], 0, 0
    for position, char in enumerate(pattern):
        if char == "[":
            depth += 1
        elif char == "]" and depth:
            depth -= 1
        elif char == ":" and not depth:
            terms.append(pattern[start:position])
            start = position + 1
    terms.append(pattern[start:])
    return terms


def _is_address(pattern: str) -> bool:
    """An IPv6 literal (optionally bracketed or prefixed with & / !) must not be split on its colons."""
    bare = pattern.lstrip("&!")
    if bare.startswith("[") and bare.endswith("]"):
        bare = bare[1:-1]
    return is_ipv6(bare)


def _evaluate(index: _Index, pattern: str) -> set[str]:
    terms = split_pattern(pattern)
    if not terms:
        raise PatternError("empty host pattern {!r}".format(pattern))
    selected: set[str] = set()
    for term in order_terms(terms):
        operator, expression = (term[0], term[1:]) if term[0] in "&!" else ("", term)
        if not expression:
            raise PatternError('empty term "{}" in host pattern "{}"'.format(term, pattern))
        matched = index.match(expression)
        if not matched:
            if operator == "!":
                log.warning('exclusion "%s" in host pattern "%s" matches no host; ignored', term, pattern)
                continue
            raise PatternError('no hosts match pattern "{}"{}'.format(term, index.hint(expression)))
        if operator == "&":
            selected &= matched
        elif operator == "!":
            selected -= matched
        else:
            selected |= matched
    return selected


class _Index:
    """Group -> member host names (descendants included), built once per select() call."""

    def __init__(self, inventory: Inventory) -> None:
        self.hosts = list(inventory.hosts)
        self.host_set = set(self.hosts)
        self.groups: dict[str, set[str]] = {name: set() for name in inventory.groups}
        for host in inventory.hosts.values():
            for group in host.groups:
                self.groups.setdefault(group, set()).add(host.name)

    def match(self, expression: str) -> set[str]:
        """Host names matched by one term without its operator.

        ``~regex`` is re.search over group and host names; a term with ``* ? [`` is an fnmatch glob over both;
        a plain word is the group and/or the host of exactly that name. A matching group brings all its hosts.
        """
        if expression.startswith("~"):
            try:
                test = re.compile(expression[1:]).search
            except re.error as exc:
                raise PatternError('invalid regular expression in host pattern "{}": {}'.format(expression, exc)) \
                    from None
        elif _GLOB_CHARS.intersection(expression):
            def test(name: str) -> bool:
                return fnmatch.fnmatchcase(name, expression)
        else:
            names = set(self.groups.get(expression, ()))
            if expression in self.host_set:
                names.add(expression)
            return names
        names = set()
        for group, members in self.groups.items():
            if test(group):
                names |= members
        names.update(host for host in self.hosts if test(host))
        return names

    def hint(self, expression: str) -> str:
        """A short "did you mean / known groups and hosts" suffix for a no-match error."""
        import difflib

        groups = sorted(g for g in self.groups if g not in ("all", "ungrouped"))
        close = difflib.get_close_matches(expression.lstrip("~"), groups + self.hosts, n=3, cutoff=0.6)
        parts = ["did you mean {}?".format(", ".join(close))] if close else []
        if groups:
            more = ", ..." if len(groups) > _HINT_COUNT else ""
            parts.append("groups: {}{}".format(", ".join(groups[:_HINT_COUNT]), more))
        if self.hosts:
            more = ", ..." if len(self.hosts) > _HINT_COUNT else ""
            parts.append("hosts: {}{}".format(", ".join(self.hosts[:_HINT_COUNT]), more))
        else:
            parts.append("the inventory has no hosts")
        return " ({})".format("; ".join(parts))
