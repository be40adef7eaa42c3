from __future__ import annotations

import io

import pytest
from rich.console import Console

from custseg.progress import TYPICAL_SECONDS, StageClock, stage_progress


class FakeClock:
    """A clock a test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_time_left_scales_the_typical_seconds_of_the_stages_to_come_by_the_runs_pace():
    clock = FakeClock()
    stages = StageClock(["read", "clean", "segments", "report"], clock=clock)
    assert (stages.current, stages.done, stages.seconds_left()) == (0, 0, None)
    stages.start("read")
    assert stages.seconds_left() is None  # nothing has finished: no pace yet
    clock.now += 6.0  # read took 6 s where it typically takes 2: this run goes at three times the typical
    stages.start("clean")
    assert (stages.current, stages.done) == (2, TYPICAL_SECONDS["read"])
    assert stages.seconds_left() == pytest.approx(3 * (2.0 + 8.0 + 2.0))
    clock.now += 4.0  # counts down while the stage runs
    assert stages.seconds_left() == pytest.approx(3 * (2.0 + 8.0 + 2.0) - 4.0)
    clock.now += 2.0  # clean has had its 6 s: the later stages' time is left
    assert stages.seconds_left() == pytest.approx(3 * (8.0 + 2.0))
    clock.now += 98.0  # a stage that overruns is taken to end now, and the pace to include it
    assert stages.seconds_left() == pytest.approx(110 / 4 * (8.0 + 2.0))
    stages.start("segments")  # the pace of read and clean, as it was a moment ago
    assert stages.seconds_left() == pytest.approx(110 / 4 * (8.0 + 2.0))


def test_a_stage_the_plan_does_not_have_is_refused():
    with pytest.raises(ValueError, match="stage 'predict' is not one of read, clean"):
        StageClock(["read", "clean"]).start("predict")


def test_the_bar_shows_the_stage_its_number_the_time_elapsed_and_the_time_left():
    clock = FakeClock()
    shown = io.StringIO()
    console = Console(file=shown, force_terminal=True, width=100, color_system=None)
    with stage_progress(["read", "clean", "segments"], console=console, clock=clock) as on_stage:
        on_stage("read")
        clock.now += 10.0
        on_stage("clean")
        clock.now += 5.0
    # Read took 10 s for 2 typical: clean (2) and segments (8) at 5 s each, less the 5 s clean has had.
    assert "clean    ━━━━━━" in shown.getvalue()
    assert "stage 2/3 0:00:15 0:00:45 left" in shown.getvalue()
