from __future__ import annotations

from custseg.clean import CleanRules
from custseg.presets import PRESETS, REFUNDED_STATUSES, UNPAID_STATUSES
from custseg.schema import CANONICAL


def test_names_are_unique_and_not_the_name_of_a_users_mapping():
    # run.json's input.preset names the layout, or "custom" when the user mapped columns.
    names = [preset.name for preset in (*PRESETS, CANONICAL)]
    assert len(set(names)) == len(names)
    assert "custom" not in names


def test_every_layouts_status_words_apply_to_any_source():
    # Cleaning reads one status column whatever the layout: no word may be an unpaid order in one
    # layout and an order refunded in full in another.
    assert set(UNPAID_STATUSES).isdisjoint(REFUNDED_STATUSES)
    assert CleanRules().unpaid_statuses == UNPAID_STATUSES == ("voided", "pending", "authorized", "expired")
    assert REFUNDED_STATUSES == ("refunded",)
