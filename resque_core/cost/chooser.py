"""Which candidates to retrain so that a few measurements teach the cost model the most per
unit of cost (:func:`choose_for_calibration`).

The rule, in order:

1. Candidates whose epochs are already known skip retraining: a shift on which the source model
   is at the target accuracy before training needs 0 epochs (``Signals.at_target``).
2. ``k`` is shared between kinds (RESQUE_dist and RESQUE_task are fitted apart): first
   :data:`PICKS_PER_KIND` (two) for each kind, largest kind first, while ``k`` allows (a single
   run of a kind calibrates nothing for it); the rest in proportion to the kinds' remaining
   candidates, among the kinds that have picks. ``k = 1`` goes to the largest kind.
3. Within a kind, the candidates are ordered by RESQUE and cut into as many equal bands (by
   rank) as the kind has picks; each band gives one candidate: the cheapest by estimated
   cost, where a shift family not yet picked counts as :data:`NEW_FAMILY_DISCOUNT` of its cost
   (so picks spread over families when costs are close), ties by id.
4. With a budget, the estimated costs of the picks must fit: the most expensive pick is
   dropped until they do (a kind keeps at least one pick only if it fits).

The estimated cost of a candidate is its energy probe's seconds and kWh per epoch times a rough
epoch guess (:data:`GUESS_EPOCHS` + the prior's 80 % upper bound): only a way to compare and
budget, never shown as a prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = [
    "GUESS_EPOCHS",
    "NEW_FAMILY_DISCOUNT",
    "PICKS_PER_KIND",
    "Option",
    "choose_for_calibration",
]

NEW_FAMILY_DISCOUNT = 0.5
GUESS_EPOCHS = 1.0
PICKS_PER_KIND = 2
"""A kind's first picks: a kind's calibration needs two runs, so a single pick of a kind would
measure that candidate and calibrate nothing."""


@dataclass(frozen=True)
class Option:
    """A scored candidate the chooser may pick: ``seconds`` / ``kwh``: its estimated cost of
    retraining; ``known``: its epochs are known without retraining."""

    id: str
    kind: str
    resque: float
    family: str = "task"
    seconds: float = 0.0
    kwh: float = 0.0
    known: bool = False


def _shares(sizes: dict[str, int], k: int) -> dict[str, int]:
    total = sum(sizes.values())
    k = min(k, total)
    share = dict.fromkeys(sizes, 0)
    if k < PICKS_PER_KIND:  # too few for a calibration of any kind: all to the largest
        share[max(sizes, key=lambda s: (sizes[s], s))] = k
        return share
    left = k
    # first picks: PICKS_PER_KIND for each kind, largest first, while k allows (one run of a
    # kind fits nothing for that kind: a calibration needs two)
    for kind in sorted(sizes, key=lambda s: (-sizes[s], s)):
        first = min(PICKS_PER_KIND, sizes[kind])
        if first <= left:
            share[kind], left = first, left - first
    while left > 0:
        # the kind furthest below its proportional share that can still take one; a kind
        # without picks takes none now (it could only get one, which fits nothing)
        open_kinds = [s for s in sizes if 0 < share[s] < sizes[s]]
        kind = max(open_kinds, key=lambda s: (k * sizes[s] / total - share[s], s))
        share[kind] += 1
        left -= 1
    return share


def _cost(o: Option, budget: str) -> float:
    return o.kwh if budget == "kwh" else o.seconds


def _pick_kind(options: list[Option], m: int, by: str) -> list[Option]:
    ranked = sorted(options, key=lambda o: (o.resque, o.id))
    n = len(ranked)
    picked: list[Option] = []
    families: set[str] = set()
    for band in range(m):
        lo, hi = round(band * n / m), round((band + 1) * n / m)
        members = ranked[lo:hi] or ranked[min(lo, n - 1) : min(lo, n - 1) + 1]
        members = [o for o in members if o not in picked]
        if not members:
            continue

        def weight(o: Option) -> tuple[float, str]:
            c = _cost(o, by)
            return (c * (NEW_FAMILY_DISCOUNT if o.family not in families else 1.0), o.id)

        best = min(members, key=weight)
        picked.append(best)
        families.add(best.family)
    return picked


def choose_for_calibration(
    options: Sequence[Option],
    k: int,
    *,
    budget_seconds: float | None = None,
    budget_kwh: float | None = None,
) -> list[Option]:
    """Up to ``k`` options to retrain (module doc), ordered by kind then RESQUE."""
    if k < 1:
        raise ConfigError(f"the number of candidates to retrain must be at least 1, got {k}")
    if budget_seconds is not None and budget_kwh is not None:
        raise ConfigError("give one budget: minutes or kWh, not both")
    for name, value in (("time", budget_seconds), ("energy", budget_kwh)):
        if value is not None and not value > 0:
            raise ConfigError(f"the {name} budget must be > 0, got {value}")
    by = "kwh" if budget_kwh is not None else "seconds"
    budget = budget_kwh if budget_kwh is not None else budget_seconds
    free = [o for o in options if not o.known]
    by_kind: dict[str, list[Option]] = {}
    for o in free:
        by_kind.setdefault(o.kind, []).append(o)
    if not by_kind:
        return []
    share = _shares({s: len(v) for s, v in by_kind.items()}, k)
    picked = [o for s in sorted(by_kind) for o in _pick_kind(by_kind[s], share[s], by)]
    if budget is not None:
        while picked and sum(_cost(o, by) for o in picked) > budget:
            picked.remove(max(picked, key=lambda o: (_cost(o, by), o.id)))
    return sorted(picked, key=lambda o: (o.kind, o.resque, o.id))
