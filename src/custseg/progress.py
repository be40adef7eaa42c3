"""How far ``custseg run`` has come and how long it has left, for a person watching it in a terminal.

The pipeline says when each stage starts (``on_stage`` of `custseg.pipeline.run`), not how far a
stage has come. So the bar counts stages, each weighted by how long it typically takes, and the time
left is what the stages still to come typically take, scaled by how long this run's finished stages
took against their typical time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.table import Column
from rich.text import Text

TYPICAL_SECONDS: dict[str, float] = {
    "read": 2.0,
    "clean": 2.0,
    "products": 0.5,
    "features": 0.5,
    "rfm": 0.2,
    "backtest": 0.5,
    "interests": 3.0,
    "segments": 8.0,
    "movement": 0.3,
    "value": 5.0,
    "early": 10.0,
    "write": 1.0,
    "report": 2.0,
    "course": 60.0,
}
"""Seconds each stage typically takes: the UCI file (541,909 rows, 4,372 customers) on the 2-core machine,
rounded from the timings of its runs (run.json ``timings_s``; docs/performance.md). Only their
proportions matter."""
OTHER_STAGE_SECONDS = 1.0
"""The weight of a stage `TYPICAL_SECONDS` does not list."""


@dataclass
class StageClock:
    """Which stage of a plan is running, and the time left estimated from the stages done.

    Parameters
    ----------
    stages : sequence of str
        The plan's stage names, in run order.
    clock : callable
        Seconds of a monotonic clock (`time.monotonic`; a test passes its own).

    Examples
    --------
    >>> now = [0.0]
    >>> clock = StageClock(["read", "segments"], clock=lambda: now[0])
    >>> clock.start("read"); now[0] = 4.0; clock.start("segments")
    >>> clock.current, clock.seconds_left()
    (2, 16.0)
    """

    stages: Sequence[str]
    clock: Callable[[], float] = time.monotonic
    current: int = 0
    """The 1-based number of the running stage; 0 before the first."""
    _run_started: float | None = field(default=None, repr=False)
    _stage_started: float | None = field(default=None, repr=False)

    def weight(self, name: str) -> float:
        """Return the typical seconds of stage ``name``."""
        return TYPICAL_SECONDS.get(name, OTHER_STAGE_SECONDS)

    @property
    def total(self) -> float:
        """Typical seconds of the whole plan."""
        return sum(self.weight(name) for name in self.stages)

    @property
    def done(self) -> float:
        """Typical seconds of the stages finished."""
        return sum(self.weight(name) for name in self.stages[: max(self.current - 1, 0)])

    def start(self, name: str) -> None:
        """Note that stage ``name`` starts now (the ``on_stage`` callback of `custseg.pipeline.run`).

        Raises
        ------
        ValueError
            If ``name`` is not a stage of the plan.
        """
        if name not in self.stages:
            raise ValueError(f"stage {name!r} is not one of {', '.join(self.stages)}")
        now = self.clock()
        if self._run_started is None:
            self._run_started = now
        self._stage_started = now
        self.current = list(self.stages).index(name) + 1

    def seconds_left(self) -> float | None:
        """Estimate the seconds the run has left; None until a stage has finished.

        The stages not finished take their typical seconds times this run's pace (seconds taken over
        typical seconds of the stages done), less the time the running stage has had. A running stage
        that has taken longer than that is taken to end now, and the pace to include it: the stages after
        it get longer as it runs on.
        """
        if self._run_started is None or self._stage_started is None or self.done == 0:
            return None
        now = self.clock()
        pace = (self._stage_started - self._run_started) / self.done
        running = self.weight(self.stages[self.current - 1])
        after = self.total - self.done - running
        running_left = pace * running - (now - self._stage_started)
        if running_left >= 0:
            return pace * after + running_left
        return (now - self._run_started) / (self.done + running) * after


def clock_time(seconds: float) -> str:
    """Write seconds as h:mm:ss, as Rich's time columns do."""
    minutes, whole_seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{whole_seconds:02d}"


class TimeLeftColumn(ProgressColumn):
    """The time a run has left, from a `StageClock` (counting down while a stage runs)."""

    def __init__(self, clock: StageClock) -> None:
        super().__init__()
        self.clock = clock

    def render(self, task: Task) -> Text:
        """Show the estimate, or dashes until there is one."""
        left = self.clock.seconds_left()
        return Text(f"{'-:--:--' if left is None else clock_time(left)} left", style="progress.remaining")


@contextmanager
def stage_progress(
    stages: Sequence[str], *, console: Console | None = None, clock: Callable[[], float] = time.monotonic
) -> Iterator[Callable[[str], None]]:
    """Show a progress bar over a plan's stages while the block runs; yield the ``on_stage`` callback.

    The bar shows the running stage's name, the share of the typical run done, ``stage k/n``, the time
    elapsed and the time left; it is erased when the block ends (the summary follows).

    Parameters
    ----------
    stages : sequence of str
        The plan's stage names, in run order (`custseg.pipeline.plan_of`).
    console : rich.console.Console, optional
        Where to draw; default standard output.
    clock : callable
        Seconds of a monotonic clock.

    Examples
    --------
    >>> with stage_progress(["read", "clean"]) as on_stage:  # doctest: +SKIP
    ...     run(data, out, settings, on_stage=on_stage)
    """
    stage_clock = StageClock(stages, clock)
    name_width = max(len(name) for name in (*stages, "starting"))
    columns = (
        TextColumn("{task.description}", table_column=Column(width=name_width)),
        BarColumn(),
        TextColumn("stage {task.fields[stage]}/{task.fields[stages]}"),
        TimeElapsedColumn(),
        TimeLeftColumn(stage_clock),
    )
    with Progress(*columns, console=console, transient=True, get_time=clock) as progress:
        task = progress.add_task("starting", total=stage_clock.total, stage=0, stages=len(stages))

        def on_stage(name: str) -> None:
            stage_clock.start(name)
            progress.update(task, description=name, completed=stage_clock.done, stage=stage_clock.current)

        yield on_stage
