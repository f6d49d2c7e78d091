"""Which worker boot failures are reported in full: the first of each kind."""

from __future__ import annotations

import pytest

from prefork.arbiter.supervision import BootFailureReports

pytestmark = pytest.mark.timeout(10)


def test_the_first_report_is_new_and_its_repeats_are_not() -> None:
    reports = BootFailureReports()
    assert reports.is_new("ValueError at app.py:5", "Traceback ...")
    assert not reports.is_new("ValueError at app.py:5", "Traceback ...")
    assert not reports.is_new("ValueError at app.py:5", "Traceback ...")


def test_a_different_reason_or_traceback_is_new() -> None:
    reports = BootFailureReports()
    assert reports.is_new("ValueError at app.py:5", "Traceback A")
    assert reports.is_new("ValueError at app.py:5", "Traceback B")
    assert reports.is_new("KeyError at app.py:7", "Traceback B")
    assert not reports.is_new("ValueError at app.py:5", "Traceback A")  # alternating errors


def test_memory_is_bounded_to_the_latest_failures() -> None:
    reports = BootFailureReports(limit=2)
    for reason in ("a", "b", "c"):
        assert reports.is_new(reason, "")
    assert reports.is_new("a", "")  # forgotten: the oldest of three
    assert not reports.is_new("c", "")
