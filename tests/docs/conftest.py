"""Fixtures the documents' tests borrow: the small world with the tiny tax map (tests/mobile)."""

from tests.mobile.conftest import mapped  # noqa: F401  (a fixture, used by name)
