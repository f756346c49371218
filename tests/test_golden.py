"""Each sample capture gives exactly the findings in its golden file, in both profiles."""

from __future__ import annotations

import pytest

from dimsesniff.rules.base import PROFILES
from tests.golden import findings, golden_path, read, samples


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("sample", samples(), ids=lambda p: p.stem)
def test_sample_matches_golden(sample, profile):
    path = golden_path(sample, profile)
    assert path.exists(), f"no golden file {path.name}: run python -m tests.golden"
    assert findings(sample, profile) == read(path)


def test_every_golden_file_has_a_sample():
    stems = {f"{s.stem}.{p}" for s in samples() for p in PROFILES}
    for path in golden_path(samples()[0], PROFILES[0]).parent.glob("*.violations.csv"):
        assert path.name.removesuffix(".violations.csv") in stems, path.name
