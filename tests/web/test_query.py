"""The views' query parameters: parsing (400 naming the parameter) and filtering."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import MultiDict

from streams.web.query import (
    LOYALTY_DIMENSIONS,
    REFERRAL_DIMENSIONS,
    BadParameter,
    Query,
    apply,
    parse,
)

DATA: dict[str, Any] = {
    "total": {"all": {"points_lost": 60, "customers": 3}},
    "campaign": {
        "Gold": {"points_lost": 10, "customers": 1},
        "Silver": {"points_lost": 30, "customers": 1},
        "Bronze": {"points_lost": 30, "customers": 2},
    },
    "day": {
        "2025-01-01": {"points_lost": 10, "customers": 1},
        "2025-01-02": {"points_lost": 20, "customers": 1},
        "2025-01-03": {"points_lost": 30, "customers": 1},
    },
}


def _parse(dims: tuple[str, ...] = LOYALTY_DIMENSIONS, **params: str) -> Query:
    return parse(MultiDict(params), dims)


def test_no_parameters_is_everything() -> None:
    assert apply(DATA, _parse()) == DATA


def test_dimension_key_top_and_days() -> None:
    assert apply(DATA, _parse(dimension="campaign", top="2")) == {
        "campaign": {"Bronze": DATA["campaign"]["Bronze"], "Silver": DATA["campaign"]["Silver"]}
    }
    assert apply(DATA, _parse(dimension="campaign,total", key="Gold")) == {
        "campaign": {"Gold": DATA["campaign"]["Gold"]},
        "total": {},
    }
    days = apply(DATA, _parse(**{"from": "2025-01-02", "to": "2025-01-03"}))
    assert list(days["day"]) == ["2025-01-02", "2025-01-03"]
    assert days["campaign"] == DATA["campaign"]  # the bounds are the day dimension's only
    assert list(apply(DATA, _parse(**{"to": "2025-01-01"}))["day"]) == ["2025-01-01"]


@pytest.mark.parametrize(
    ("params", "dims", "parameter"),
    [
        ({"dimension": "planet"}, LOYALTY_DIMENSIONS, "dimension"),
        ({"dimension": "day"}, REFERRAL_DIMENSIONS, "dimension"),
        ({"top": "ten"}, LOYALTY_DIMENSIONS, "top"),
        ({"top": "0"}, LOYALTY_DIMENSIONS, "top"),
        ({"top": "-3"}, LOYALTY_DIMENSIONS, "top"),
        ({"key": ""}, LOYALTY_DIMENSIONS, "key"),
        ({"from": "2025-13-01"}, LOYALTY_DIMENSIONS, "from"),
        ({"to": "yesterday"}, LOYALTY_DIMENSIONS, "to"),
        ({"from": "2025-01-03", "to": "2025-01-01"}, LOYALTY_DIMENSIONS, "from"),
        ({"from": "2025-01-03"}, REFERRAL_DIMENSIONS, "from"),
        ({"local": "yes"}, LOYALTY_DIMENSIONS, "local"),
    ],
)
def test_bad_parameters_name_themselves(
    params: dict[str, str], dims: tuple[str, ...], parameter: str
) -> None:
    with pytest.raises(BadParameter) as caught:
        parse(MultiDict(params), dims)
    assert caught.value.parameter == parameter
    assert caught.value.body()["parameter"] == parameter


def test_a_parameter_given_twice_is_refused() -> None:
    with pytest.raises(BadParameter, match="top: given more than once"):
        parse(MultiDict([("top", "1"), ("top", "2")]), LOYALTY_DIMENSIONS)


def test_peers_are_asked_without_top() -> None:
    query = _parse(dimension="day", top="3", **{"from": "2025-01-01"})
    assert query.local_params() == {"local": "1", "dimension": "day", "from": "2025-01-01"}
