"""Rollout batches: ``--parallelism N|N%|1,5,25%`` (Ansible's ``serial``) or the compose ``parallelism``.

As Ansible's ``serial``: a list gives the size of each batch in turn, the last size repeating until every host
has had its turn; a percentage is of all the hosts being updated, rounded down, at least 1.  Compose's
``parallelism: 0`` means every host at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fleet.errors import UsageError

_STEP = re.compile(r"^\s*(\d+)\s*(%?)\s*$")


@dataclass(frozen=True)
class Step:
    value: int
    percent: bool = False

    def size(self, total: int) -> int:
        if self.percent:
            return max(1, total * self.value // 100)
        return self.value


def parse_parallelism(text: str, flag: str = "--parallelism") -> list[Step]:
    """``"2"``, ``"25%"`` or ``"1,5,25%"`` -> steps; 0, negatives, >100% and words are a UsageError naming it."""
    steps = []
    for part in str(text).split(","):
        m = _STEP.match(part)
        if not m:
            raise UsageError("invalid {} {!r}: want N, N% or a list like 1,5,25%".format(flag, text))
        value, percent = int(m.group(1)), bool(m.group(2))
        if value == 0:
            raise UsageError("invalid {} {!r}: a batch of 0 hosts would never finish; use 1 or more".format(
                flag, text))
        if percent and value > 100:
            raise UsageError("invalid {} {!r}: a percentage is at most 100%".format(flag, text))
        steps.append(Step(value, percent))
    return steps


def from_compose(parallelism: int) -> list[Step]:
    """Compose's ``update_config.parallelism``: 0 is every host at once."""
    return [Step(100, True)] if parallelism == 0 else [Step(parallelism)]


def split(items: list, steps: list[Step]) -> list[list]:
    """``items`` in batches of the steps' sizes (the last step repeats)."""
    total = len(items)
    out, i, k = [], 0, 0
    while i < total:
        size = max(1, steps[min(k, len(steps) - 1)].size(total))
        out.append(items[i:i + size])
        i += size
        k += 1
    return out
