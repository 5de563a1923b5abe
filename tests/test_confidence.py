"""The confidence formula (DESIGN §4), pinned."""

from __future__ import annotations

import pytest

from kb.engine import Evidence, confidence


def value(**kw: object) -> float:
    return confidence(Evidence(**{"prior": 0.5, **kw}))[0]  # type: ignore[arg-type]


def test_prior_alone_is_the_prior() -> None:
    assert value() == pytest.approx(0.5)
    assert value(prior=0.3) == pytest.approx(0.3)


def test_specific_evidence_ranks_above_generic() -> None:
    assert value(match="exact-row") > value(match="distribution") > value(match="name-only-row") > value()


def test_version_bound() -> None:
    base = value(match="exact-row", version="unknown")
    assert value(match="exact-row", version="satisfied") > base > value(match="exact-row", version="contradicted")
    assert value(match="exact-row", version="contradicted") < 0.5


def test_support_grows_with_diminishing_returns_and_a_cap() -> None:
    one, eight, many = value(failures=1), value(failures=8), value(failures=100_000)
    assert one < eight < many
    assert many == value(failures=10**9)  # capped


def test_learned_record_moves_toward_the_evidence() -> None:
    base = value(match="exact-row")
    assert value(match="exact-row", verified=7, failed=0) > base
    assert value(match="exact-row", verified=0, failed=7) < base
    assert value(match="exact-row", verified=0, failed=50) < 0.1


def test_breakdown_explains_the_number() -> None:
    final, breakdown = confidence(Evidence(prior=0.5, match="exact-row", version="satisfied", failures=9,
                                           verified=7, failed=2))
    assert breakdown["final"] == final
    assert breakdown["learned"] == {"verified": 7, "attempts": 9}
    assert set(breakdown["terms"]) == {"match", "version", "mention", "support"}
    assert 0.0 <= final <= 1.0


def test_layers_rank_curated_over_learned_over_mined_over_generic() -> None:
    curated = value(match="exact-row", version="satisfied")
    learned = value(match="exact-row", version="satisfied", layer="learned")
    mined = value(match="exact-row", version="satisfied", layer="mined")
    generic = value(match="owner", layer="generic", declared=True)
    assert curated > learned > mined > generic > 0.5


def test_generic_causes_stay_honest() -> None:
    # reasoned from an installed distribution the project declares: worth saying, not certain
    assert 0.6 < value(match="owner", layer="generic", declared=True) < 0.7
    assert value(match="owner", layer="generic") < value(match="owner", layer="generic", declared=True)
    # many failures agreeing count half for a generic cause
    assert value(match="owner", layer="generic", failures=1000) < value(match="owner", failures=1000)
    # a distribution only guessed from the module's name never reaches a coin flip
    assert value(match="owner-guess", layer="generic", failures=10**6, declared=False) < 0.5
