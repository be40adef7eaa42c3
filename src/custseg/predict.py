"""Segments for customers the model has not seen: the fitted model that `custseg assign` applies.

A segmentation is only useful if tomorrow's customers get a segment too. `custseg run` keeps what
it learned (cleaning rules, product categories, RFM cut points and map, the fitted segmentation,
the segment names and actions) in a model folder; `custseg assign` runs the same stages on new
transactions with those fitted pieces instead of learning new ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from custseg.cluster import Segmentation
from custseg.rfm import RFMScorer, SegmentRule
from custseg.workspace import json_records

MODEL_VERSION = 1
"""Layout version of the model folder (model.json and segmentation.skops)."""


@dataclass
class FittedModel:
    """What a run learned, to apply to other transactions.

    Attributes
    ----------
    manifest : dict
        model.json: version, custseg version, training data checksum, settings, RFM cut points,
        code map and rules, product categories and labels, segment profiles.
    segmentation : Segmentation or None
        The fitted learned segmentation (None when the run skipped it).
    """

    manifest: dict[str, Any]
    segmentation: Segmentation | None

    def scorer(self) -> RFMScorer:
        """Rebuild the RFM scorer with the stored cut points and segment map (no refitting)."""
        rfm = self.manifest["rfm"]
        rules = [SegmentRule(r["name"], tuple(r["patterns"]), r["description"], r["action"]) for r in rfm["rules"]]
        scorer = RFMScorer(bins=rfm["bins"], rules=rules)
        scorer.cut_points_ = {k: list(v) for k, v in rfm["cut_points"].items()}
        scorer.code_map_ = dict(rfm["code_map"])
        return scorer

    def categorize(self, products: pd.DataFrame) -> pd.DataFrame:
        """Put products in the stored categories; products the model never saw are ``unknown``."""
        categories = self.manifest["products"]["categories"]
        labels = self.manifest["products"]["labels"]
        category = products.product_id.map(categories).fillna("unknown")
        return products.assign(category=category, category_label=category.map(labels).fillna("unknown"))

    def assign(self, customers: pd.DataFrame) -> pd.DataFrame:
        """Segment id, name and action of each customer (DataFrame with the features)."""
        profiles = {p["segment"]: p for p in self.manifest.get("segments") or []}
        if self.segmentation is None or not profiles:
            return pd.DataFrame(index=customers.index, columns=["segment", "segment_name", "action"])
        ids = [f"S{i + 1}" for i in self.segmentation.predict(customers)]
        return pd.DataFrame(
            {
                "segment": ids,
                "segment_name": [profiles[s]["name"] for s in ids],
                "action": [profiles[s]["action"] for s in ids],
            },
            index=customers.index,
        )


def model_manifest(
    *,
    version: str,
    trained_on: dict,
    settings: dict,
    as_of: str,
    scorer: RFMScorer,
    products: pd.DataFrame,
    profiles: pd.DataFrame | None,
    features: list[str] | None,
) -> dict[str, Any]:
    """Assemble model.json from a finished run's pieces."""
    return {
        "model_version": MODEL_VERSION,
        "custseg_version": version,
        "trained_on": trained_on,
        "as_of": as_of,
        "settings": settings,
        "rfm": {
            "bins": scorer.bins,
            "cut_points": scorer.cut_points_,
            "code_map": scorer.code_map_,
            "rules": [
                {"name": r.name, "patterns": list(r.patterns), "description": r.description, "action": r.action}
                for r in scorer.segment_rules().values()
            ],
        },
        "products": {
            "categories": dict(zip(products.product_id, products.category, strict=True)),
            "labels": dict(zip(products.category, products.category_label, strict=True)),
            "category_order": sorted(products.category.unique()),
        },
        "segment_features": features,
        "segments": None if profiles is None else json_records(profiles[["segment", "name", "description", "action"]]),
    }
