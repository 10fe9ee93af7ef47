"""Live progress: what the status line shows, and plain output off a terminal."""

from __future__ import annotations

import pytest

from darkfactory.reporting.progress import Progress


def test_progress_tracks_phase_role_tests_tokens_and_cost() -> None:
    p = Progress(live=False)
    p.observe({"kind": "phase_start", "phase": "implement"})
    p.observe(
        {
            "kind": "llm_call",
            "role": "Software Developer",
            "model": "openai/gpt-4o-mini",
            "prompt_tokens": 1000,
            "completion_tokens": 500,
        }
    )
    p.observe({"kind": "verify", "acceptance": {"passed": 3, "total": 8}})
    assert (p.phase, p.role, p.tests, p.tokens) == ("implement", "Software Developer", "3/8", 1500)
    assert p.cost == pytest.approx((1000 * 0.15 + 500 * 0.60) / 1e6)
    p.observe(
        {
            "kind": "llm_call",
            "role": "x",
            "model": "unknown/model",
            "prompt_tokens": 1,
            "completion_tokens": 1,
        }
    )
    assert p.cost is None  # one unknown price makes the total unknown, never an undercount
    assert "cost: unknown" in p._line()


def test_plain_lines_off_a_terminal_and_nothing_when_quiet(
    capsys: pytest.CaptureFixture[str],
) -> None:
    Progress(live=False)("phase design")
    Progress(quiet=True)("phase design")
    err = capsys.readouterr().err
    assert err == "darkfactory: phase design\n"
