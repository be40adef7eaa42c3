"""custseg: customer segments from a shop's transaction log.

The Python API, for notebooks and scripts (the command line is ``custseg``):

>>> import custseg
>>> result = custseg.run("orders.csv")  # doctest: +SKIP
>>> result.segments  # doctest: +SKIP
>>> custseg.load("custseg-out").model.assign(new_orders)  # doctest: +SKIP

`run`, `load`, `Run`, `Model` and `Stages` live in `custseg.runs`, `compare` (who moved between the
segments of two assigned tables) in `custseg.pipeline`; they are imported on first use, so that
``import custseg`` (and ``custseg --help``) stays quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

__all__ = ["Model", "Run", "Stages", "__version__", "compare", "load", "run"]

if TYPE_CHECKING:
    from custseg.pipeline import compare
    from custseg.runs import Model, Run, Stages, load, run


def __getattr__(name: str) -> Any:
    if name in ("Model", "Run", "Stages", "load", "run"):
        import custseg.runs

        return getattr(custseg.runs, name)
    if name == "compare":
        import custseg.pipeline

        return custseg.pipeline.compare
    raise AttributeError(f"module 'custseg' has no attribute {name!r}")
