"""The model folder: what a run learned, kept so that tomorrow's customers get segments too.

`custseg run` keeps what it learned (cleaning rules and settings, product categories, RFM cut points
and map, the fitted segmentation, the segment names and actions, the early models) in ``model/``;
`custseg assign`, the API and `custseg.Model` apply those fitted pieces to other transactions
instead of learning new ones. Each fitted stage says what it keeps (`RFMScorer.state`,
`custseg.products.categories_state`, `Segmentation.portable`, the `ValueModel`); this module writes and checks the
folder: model.json records the SHA-256 of every model file, and a model is loaded only when every
file matches it and every stored type is trusted.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from custseg.early import EARLY_COLUMNS
from custseg.errors import InputFileError
from custseg.interests import INTEREST_COLUMNS, InterestGroups
from custseg.products import apply_categories
from custseg.profile import segment_ids
from custseg.rfm import RFMScorer
from custseg.settings import settings_from_dict
from custseg.value import value_columns
from custseg.workspace import MODEL_FOLDER, file_sha256, json_records

if TYPE_CHECKING:
    from custseg.cluster import Segmentation
    from custseg.value import ValueModel

MODEL_VERSION = 11
"""Layout version of the model folder (7: learned segments as rules, custseg.rules.RuleTree and
custseg.spaces.RuleSpace; 8: the value model's links rise above their range, IndexLink.end_slope_;
10: product categories from product types, and the interest groups in model.json ``interests``;
11: the early models' chances, custseg.early.EarlyClassifier.class_prior_)."""
MODEL_FILE = "model.json"
SEGMENTATION_FILE = "segmentation.skops"
EARLY_FILE = "early.skops"
VALUE_FILE = "value.skops"
MODEL_FILES = (SEGMENTATION_FILE, EARLY_FILE, VALUE_FILE)
TRUSTED_TYPES = frozenset(
    {
        "custseg.candidates.QuantileTiers",
        "custseg.rules.RuleTree",
        "custseg.spaces.RuleSpace",
        "custseg.cluster.ClusterOptions",
        "custseg.cluster.Segmentation",
        "custseg.spaces.FeatureSpace",
        "custseg.spaces.NextValueScore",
        "custseg.backtest.BacktestOptions",
        "custseg.early.EarlyClassifier",
        "custseg.lookup.LookupClassifier",
        "custseg.value.IndexLink",
        "custseg.value.ValueModel",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
    }
)
"""Types beyond skops' defaults that a custseg model file may hold; anything else is refused."""

SEGMENT_COLUMNS = (
    "customer_id",
    "recency_days",
    "frequency",
    "monetary",
    "avg_order_value",
    "tenure_days",
    "revenue_90d",
    "r_score",
    "f_score",
    "m_score",
    "rfm_code",
    "rfm_segment",
    "segment",
    "segment_name",
    "segment_rule",
    "action",
)
"""Columns of an assigned customer before the value and the early prediction (`assigned_columns`)."""
NAMED_SEGMENT_COLUMNS = ("segment", "segment_name", "segment_rule", "action")
"""What `FittedModel.assign` gives a customer: the learned segment's id, name, rule (empty for
clusters) and action."""


def assigned_columns(horizon_days: int) -> tuple[str, ...]:
    """Columns of an assigned customer, in order (`custseg assign`, the API and `custseg.Model.assign`).

    The value columns are named after the model's horizon (`custseg.value.value_columns`).
    """
    return (*SEGMENT_COLUMNS, *INTEREST_COLUMNS, *value_columns(horizon_days).values(), *EARLY_COLUMNS)


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
    early : dict
        The early models, ``early[target][str(n_orders)]`` (`custseg.early.EarlyClassifier`); empty
        when none.
    value : ValueModel or None
        Expected orders and revenue over the next H days (None when the run skipped it).
    """

    manifest: dict[str, Any]
    segmentation: Segmentation | None
    early: dict[str, dict[str, Any]] = field(default_factory=dict)
    value: ValueModel | None = None

    @property
    def model_id(self) -> str:
        """An id of this model folder: the first 16 hex digits of the SHA-256 of model.json's content.

        model.json records every model file's SHA-256, so two folders have the same id only when they
        hold the same model; `custseg assign` writes it beside every customer, and `custseg compare`
        compares only files of one model.
        """
        canonical = json.dumps(self.manifest, sort_keys=True, default=str).encode("utf-8")
        return hashlib.sha256(canonical).hexdigest()[:16]

    @property
    def as_of(self) -> datetime.datetime:
        """The reference date of the run that trained the model (model.json ``as_of``)."""
        return datetime.datetime.fromisoformat(self.manifest["as_of"])

    @property
    def horizon_days(self) -> int:
        """H of the value columns: the backtest horizon the model was trained with."""
        return int(self.manifest["settings"]["backtest"]["horizon_days"])

    def assigned_columns(self) -> tuple[str, ...]:
        """Columns of a customer this model assigns (`assigned_columns`)."""
        return assigned_columns(self.horizon_days)

    def scorer(self) -> RFMScorer:
        """Rebuild the RFM scorer with the stored cut points and segment map (no refitting)."""
        return RFMScorer.from_state(self.manifest["rfm"])

    def categorize(self, products: pd.DataFrame) -> pd.DataFrame:
        """Put products in the stored categories; products the model never saw are ``unknown``."""
        return apply_categories(products, self.manifest["products"])

    def names(self) -> dict[str, dict[str, str]]:
        """Display names per early-prediction target: segment id -> name, category id -> label."""
        profiles = self.manifest.get("segments") or []
        return {"segment": {p["segment"]: p["name"] for p in profiles}, "category": self.manifest["products"]["labels"]}

    def interest_groups(self) -> tuple[InterestGroups | None, dict[str, str]]:
        """Return the stored interest groups and their names (None and {} when the run had none)."""
        state = self.manifest.get("interests")
        if not state:
            return None, {}
        return InterestGroups.from_state(state), dict(state["names"])

    def assign(self, customers: pd.DataFrame) -> pd.DataFrame:
        """Segment id, name, rule and action of each customer (DataFrame with the features)."""
        profiles = {p["segment"]: p for p in self.manifest.get("segments") or []}
        if self.segmentation is None or not profiles or customers.empty:
            return pd.DataFrame(index=customers.index, columns=list(NAMED_SEGMENT_COLUMNS), dtype=object)
        ids = segment_ids(self.segmentation.predict(customers))
        return pd.DataFrame(
            {
                "segment": ids,
                "segment_name": [profiles[s]["name"] for s in ids],
                "segment_rule": [profiles[s].get("rule") or "" for s in ids],
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
    categories: dict[str, Any],
    profiles: pd.DataFrame | None,
    features: list[str] | None,
    value: dict[str, Any] | None = None,
    interests: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble model.json from a finished run's pieces (each fitted stage's own state)."""
    return {
        "model_version": MODEL_VERSION,
        "custseg_version": version,
        "trained_on": trained_on,
        "as_of": as_of,
        "settings": settings,
        "rfm": scorer.state(),
        "products": categories,
        "segment_features": features,
        "segments": None if profiles is None else json_records(profiles),
        "value": value,
        "interests": interests,
    }


def save_model(
    folder: Path,
    manifest: dict[str, Any],
    segmentation: Segmentation | None,
    early: dict | None,
    value: ValueModel | None = None,
) -> Path:
    """Write a model folder: segmentation.skops, early.skops and value.skops when fitted, then model.json.

    model.json records the SHA-256 of every model file (``files``), so that a changed file is
    refused when the model is loaded.
    """
    import skops.io as sio

    folder.mkdir(exist_ok=True)
    files = {}
    portable = segmentation and segmentation.portable()
    for name, fitted in ((SEGMENTATION_FILE, portable), (EARLY_FILE, early), (VALUE_FILE, value)):
        target = folder / name
        target.unlink(missing_ok=True)
        if fitted:
            sio.dump(fitted, target)
            files[name] = file_sha256(target)
    manifest = {**manifest, "files": files}
    (folder / MODEL_FILE).write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
    return folder


def load_model(folder: str | Path) -> FittedModel:
    """Load a model folder written by `save_model`, checking it before anything is loaded.

    Refused, with one line naming the file: a missing or unreadable model.json, another model
    version, settings that cannot be read, a model file missing, added or changed since it was
    written (its SHA-256 against model.json's), a file that is not a skops file, a type that is
    not trusted.

    Raises
    ------
    InputFileError
    """
    import skops.io as sio

    folder = Path(folder)
    if (folder / MODEL_FOLDER / MODEL_FILE).exists():
        folder = folder / MODEL_FOLDER
    manifest_path = folder / MODEL_FILE
    if not manifest_path.exists():
        raise InputFileError(f"{folder}: no {MODEL_FILE}; give the output folder of custseg run (or its model/)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{manifest_path}: not a readable model manifest ({exc}); run custseg run again") from None
    if not isinstance(manifest, dict) or manifest.get("model_version") != MODEL_VERSION:
        found = manifest.get("model_version") if isinstance(manifest, dict) else None
        raise InputFileError(
            f"{manifest_path}: model version {found} is not {MODEL_VERSION} (written by another custseg); "
            "run custseg run again"
        )
    try:
        settings_from_dict(manifest["settings"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputFileError(f"{manifest_path}: its settings cannot be read ({exc!r}); run custseg run again") from None
    recorded = manifest.get("files")
    if not isinstance(recorded, dict):
        raise InputFileError(f"{manifest_path}: no SHA-256 of the model files is recorded; run custseg run again")
    fitted = {}
    for name in MODEL_FILES:
        stored = folder / name
        if not stored.exists():
            if name in recorded:
                raise InputFileError(f"{stored}: missing; model.json records it")
            continue
        if name not in recorded or file_sha256(stored) != recorded[name]:
            raise InputFileError(
                f"{stored}: its SHA-256 is not the one model.json records: the file was changed since custseg "
                "wrote it; refusing to load it"
            )
        try:
            untrusted = set(sio.get_untrusted_types(file=stored))
        except Exception as exc:  # a corrupt file fails in zipfile or json, with many error types
            raise InputFileError(f"{stored}: not a skops model file ({type(exc).__name__})") from None
        refused = sorted(untrusted - TRUSTED_TYPES)
        if refused:
            raise InputFileError(f"{stored}: refusing untrusted types {', '.join(refused)}")
        fitted[name] = sio.load(stored, trusted=sorted(untrusted))
    return FittedModel(
        manifest=manifest,
        segmentation=fitted.get(SEGMENTATION_FILE),
        early=fitted.get(EARLY_FILE) or {},
        value=fitted.get(VALUE_FILE),
    )
