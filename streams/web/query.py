"""The analytics views' query parameters: `?dimension= ?key= ?top=N ?from=&to=`.

- `dimension`: one dimension or several, comma-separated (`?dimension=campaign,tier`);
- `key`: only this key (of the chosen dimensions);
- `top`: the N keys of each dimension with the highest ranking counter (points lost, referees
  lost, orphaned referred customers, advocates lost: `RANK`), ties by key;
- `from`, `to`: inclusive `YYYY-MM-DD` bounds of the `day` dimension (loyalty only).

A parameter that does not parse is a `BadParameter` naming it (the views answer 400). Filters
other than `top` are applied by every worker to its own part; `top` only to the gathered whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

LOYALTY_DIMENSIONS = ("total", "campaign", "tier", "day")
REFERRAL_DIMENSIONS = ("referral_campaign", "referrer", "advocates", "advocate_campaign")

#: The counter `top` ranks each dimension's keys by.
RANK = {
    "total": "points_lost",
    "campaign": "points_lost",
    "tier": "points_lost",
    "day": "points_lost",
    "referral_campaign": "referees_lost",
    "referrer": "referees_lost",
    "advocates": "advocates_lost",
    "advocate_campaign": "referred_customers_orphaned",
}

MAX_TOP = 10_000
PARAMETERS = ("dimension", "key", "top", "from", "to", "local")

Nested = dict[str, dict[str, dict[str, Any]]]


class BadParameter(ValueError):
    """A query parameter that cannot be used: `parameter` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message

    def body(self) -> dict[str, str]:
        return {"error": "bad parameter", "parameter": self.parameter, "message": self.message}


@dataclass(frozen=True)
class Query:
    dimensions: tuple[str, ...] = ()  # empty: every dimension
    key: str | None = None
    top: int | None = None
    day_from: str | None = None
    day_to: str | None = None

    def local_params(self) -> dict[str, str]:
        """What a peer is asked for (`top` is applied to the gathered answer only)."""
        out = {"local": "1"}
        if self.dimensions:
            out["dimension"] = ",".join(self.dimensions)
        if self.key is not None:
            out["key"] = self.key
        if self.day_from is not None:
            out["from"] = self.day_from
        if self.day_to is not None:
            out["to"] = self.day_to
        return out


def _one(query: Mapping[str, Any], name: str) -> str | None:
    getall = getattr(query, "getall", None)
    values = list(getall(name, [])) if getall is not None else []
    if getall is None and name in query:
        values = [query[name]]
    if not values:
        return None
    if len(values) > 1:
        raise BadParameter(name, "given more than once")
    return str(values[0])


def _day(name: str, value: str) -> str:
    try:
        if len(value) == 10:
            return date.fromisoformat(value).isoformat()
    except ValueError:
        pass
    raise BadParameter(name, f"expected a date YYYY-MM-DD, got {value[:40]!r}")


def parse(query: Mapping[str, Any], dimensions: tuple[str, ...]) -> Query:
    """The Query of a request's parameters for a view of `dimensions`; raises BadParameter."""
    dims: tuple[str, ...] = ()
    raw = _one(query, "dimension")
    if raw is not None:
        dims = tuple(dict.fromkeys(d.strip() for d in raw.split(",")))
        for d in dims:
            if d not in dimensions:
                known = ", ".join(dimensions)
                raise BadParameter("dimension", f"unknown dimension {d[:40]!r} (known: {known})")
    key = _one(query, "key")
    if key is not None and not key:
        raise BadParameter("key", "must not be empty")
    top = None
    raw = _one(query, "top")
    if raw is not None:
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_TOP:
            raise BadParameter("top", f"expected an integer from 1 to {MAX_TOP}, got {raw[:40]!r}")
        top = int(raw)
    bounds: dict[str, str | None] = {}
    for name in ("from", "to"):
        raw = _one(query, name)
        if raw is not None and "day" not in dimensions:
            raise BadParameter(name, "this view has no day dimension")
        bounds[name] = None if raw is None else _day(name, raw)
    lo, hi = bounds["from"], bounds["to"]
    if lo is not None and hi is not None and lo > hi:
        raise BadParameter("from", f"{lo} is after to={hi}")
    local = _one(query, "local")
    if local is not None and local not in {"0", "1"}:
        raise BadParameter("local", f"expected 0 or 1, got {local[:40]!r}")
    return Query(dims, key, top, lo, hi)


def select(data: Nested, q: Query) -> Nested:
    """`data` filtered by the query's dimension, key and day bounds (not `top`)."""
    out: Nested = {}
    for dim, keys in data.items():
        if q.dimensions and dim not in q.dimensions:
            continue
        picked = keys
        if q.key is not None:
            picked = {q.key: keys[q.key]} if q.key in keys else {}
        if dim == "day" and (q.day_from is not None or q.day_to is not None):
            lo, hi = q.day_from or "0000-00-00", q.day_to or "9999-99-99"
            picked = {k: v for k, v in picked.items() if lo <= k <= hi}
        if picked or (q.dimensions and dim in q.dimensions):
            out[dim] = dict(picked)
    return out


def top(data: Nested, n: int | None) -> Nested:
    """The `n` highest-ranked keys of each dimension (every key when `n` is None)."""
    if n is None:
        return data
    out: Nested = {}
    for dim, keys in data.items():
        rank = RANK.get(dim, "")
        ordered = sorted(keys.items(), key=lambda kv: (-int(kv[1].get(rank, 0)), kv[0]))
        out[dim] = dict(ordered[:n])
    return out


def apply(data: Nested, q: Query) -> Nested:
    return top(select(data, q), q.top)
