"""Tests for stratalog.cli._cascade: distinct errors and cascade lines."""

from __future__ import annotations

from stratalog.cli._cascade import KEY_LIMIT, OTHER, ErrorTracker, bump


def _failed(error_id: str, layer: str, *, propagated: bool = False) -> dict:
    line = {
        "event": "operation.failed",
        "layer": layer,
        "error_id": error_id,
        "error_type": "ReadTimeout",
    }
    if propagated:
        line.update(propagated=True, origin_layer="infrastructure")
    return line


def _summary_error(error_id: str, layers: list[str]) -> dict:
    return {
        "error_id": error_id,
        "type": "ReadTimeout",
        "origin_layer": layers[0],
        "layers": layers,
    }


def test_lines_and_summary_agreeing_count_once() -> None:
    """Three reference lines and a four-layer summary avoid three lines."""
    tracker = ErrorTracker()
    tracker.on_failed(_failed("e1", "infrastructure"))
    for layer in ("core", "service", "api"):
        tracker.on_failed(_failed("e1", layer, propagated=True))
    tracker.on_summary_error(
        _summary_error("e1", ["infrastructure", "core", "service", "api"])
    )
    tracker.finish()

    assert tracker.by_origin == {"infrastructure": 1}
    assert tracker.avoided_by_origin == {"infrastructure": 3}
    assert tracker.types == {"ReadTimeout": 1}


def test_summary_alone_counts_layers_crossed_minus_one() -> None:
    """Without failure lines (filtered by level) the summary's layers count."""
    tracker = ErrorTracker()
    tracker.on_summary_error(_summary_error("e2", ["core", "service", "api"]))

    assert tracker.by_origin == {"core": 1}
    assert tracker.avoided_by_origin == {"core": 2}


def test_reference_lines_alone_count_when_the_summary_is_missing() -> None:
    """Errors whose summary never arrives are settled by finish()."""
    tracker = ErrorTracker()
    tracker.on_failed(_failed("e3", "core", propagated=True))
    tracker.on_failed(_failed("e3", "api", propagated=True))
    tracker.finish()

    assert tracker.by_origin == {"infrastructure": 1}
    assert tracker.avoided_by_origin == {"infrastructure": 2}


def test_more_reference_lines_than_layers_take_the_maximum() -> None:
    """Nested operations of one layer can add lines beyond layers crossed."""
    tracker = ErrorTracker()
    for layer in ("core", "core", "api"):
        tracker.on_failed(_failed("e4", layer, propagated=True))
    tracker.on_summary_error(
        _summary_error("e4", ["infrastructure", "core", "api"])
    )

    assert tracker.avoided_by_origin == {"infrastructure": 3}


def test_open_errors_past_the_limit_settle_oldest_first() -> None:
    """Memory stays bounded: the oldest open error is settled early."""
    tracker = ErrorTracker(pending_limit=2)
    for error_id in ("a", "b", "c"):
        tracker.on_failed(_failed(error_id, "core"))

    assert tracker.by_origin == {"core": 1}
    tracker.finish()
    assert tracker.by_origin == {"core": 3}


def test_bump_folds_new_keys_past_the_limit() -> None:
    """Past KEY_LIMIT distinct keys, new keys count under OTHER."""
    counter = {str(n): 1 for n in range(KEY_LIMIT)}

    bump(counter, "0")
    bump(counter, "new", 5)

    assert counter["0"] == 2
    assert counter[OTHER] == 5
    assert "new" not in counter


def test_an_error_cut_between_two_parts_is_counted_once() -> None:
    """Failure lines before a cut and the summary after it settle together."""
    before, after = ErrorTracker(), ErrorTracker(hold=10)
    before.on_failed(_failed("e5", "infrastructure"))
    before.on_failed(_failed("e5", "core", propagated=True))
    after.on_failed(_failed("e5", "api", propagated=True))
    after.on_summary_error(
        _summary_error("e5", ["infrastructure", "core", "api"])
    )
    after.on_summary_error(_summary_error("e6", ["core", "api"]))

    before.merge(after)
    before.finish()

    assert before.by_origin == {"infrastructure": 1, "core": 1}
    assert before.avoided_by_origin == {"infrastructure": 2, "core": 1}
    assert before.types == {"ReadTimeout": 2}
