"""The words of a wander alert agree with its fields."""

from chumphae.detect.wander import duration_text


def test_seconds_are_rounded_as_the_field_is() -> None:
    """The demo's first alert said 'for 58 s' beside outside_for_s 59 (58.6 s: the text truncated, the field
    rounded)."""
    assert duration_text(58.6) == ("59 วินาที", "59 s") and round(58.6) == 59
    assert duration_text(45.2) == ("45 วินาที", "45 s")
    assert duration_text(119.7) == ("2 นาที", "2 min")  # the field says 120: whole minutes from there
    assert duration_text(250.0) == ("4 นาที", "4 min")
