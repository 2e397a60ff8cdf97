"""Every input validated once, here: the types REST bodies, query strings and the feed socket share.

A route or a feed message that takes an id, a time, a note or a name takes it
through one of these types, so the same limits hold everywhere (the socket
cannot do what REST refuses) and nothing the database cannot hold reaches it:
ids fit their columns (32-bit row ids, 64-bit cursors), times sit in a window every database and
`datetime` can convert, text has no control characters and a length cap.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    PlainSerializer,
    StringConstraints,
)

from chumphae.models import Outcome
from chumphae.numtext import INT_TEXT, INT_TEXT_MAX, ascii_decimal
from chumphae.timeutil import BANGKOK, as_utc

MAX_ID = 2**31 - 1  # row ids: INTEGER primary keys (PostgreSQL int4)
MAX_CURSOR = 2**63 - 1  # feed cursors: the feed log's BIGINT id
MAX_OFFSET = 1_000_000  # far beyond any real page; keeps OFFSET inside every database's integer
NOTE_MAX = 1000  # acknowledgement and resolution notes (REST and feed alike)
PATIENT_NOTES_MAX = 2000
TOKEN_MAX = 200  # our tokens are 47 characters

# The window any time a client sends must fall in (UTC): wide enough for history and plans,
# narrow enough that converting it to UTC or to Asia/Bangkok can never overflow.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)

# What the validators refuse, said in the OpenAPI document too (as `pattern`), so a client generated from it
# and a fuzzer reading it know the rule (api19: the schema had said any text of the length was fine).
NO_CONTROL_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
ONE_LINE_PATTERN = r"^[^\x00-\x1f\x7f]*$"
# The dates a time may be written with: the window above is checked in UTC, so an offset (or, for a time without
# one, Asia/Bangkok) brings the last hours of 1899-12-31 and the first of 2200-01-01 inside it
# (`2200-01-01T05:00:00+07:00` is 2199-12-31T22:00Z and is taken: api27; the pattern had said years 1900-2199 only,
# so a client built from it refused what the server takes). Every time is also checked in UTC, so the offset may
# still move a time the pattern lets through (the first hours of 1900, the last of 2199) outside the window.
YEAR_PATTERN = r"^(1899-12-31|19\d\d-|2[01]\d\d-|2200-01-01)"
# A calendar day (the daily report's `date`): exactly YYYY-MM-DD, 1900-2199, as the server takes it (api27: it had
# also taken `0` as 1970-01-01 and `2025-01-15T00:00:00Z` as that day).
DAY_PATTERN = r"^(19|20|21)\d\d-\d\d-\d\d$"
_DAY_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_WINDOW_NOTE = "Between 1900 and 2200 (UTC)."
NoControlDoc = Field(json_schema_extra={"pattern": NO_CONTROL_PATTERN})
OneLineDoc = Field(json_schema_extra={"pattern": ONE_LINE_PATTERN})
YearDoc = Field(json_schema_extra={"pattern": YEAR_PATTERN})
DayDoc = Field(json_schema_extra={"pattern": DAY_PATTERN})

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
# `2025-01-15T10:30:00+07:00` written into a URL unencoded: the `+` arrives as a space. Only a `+` can
# have become that space (a `-` offset survives), so the time is read as the sender wrote it.
_PLUS_AS_SPACE = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # keeps \t \n \r (notes have lines)
_CONTROL_LINE = re.compile(r"[\x00-\x1f\x7f]")  # one-line fields: no tab or newline either


_ASCII_INT = INT_TEXT
_INT_TEXT_MAX = INT_TEXT_MAX


def _int_text(value: Any) -> Any:
    """An integer in a path or a query string: an optional `-` and ASCII digits, nothing else.

    A lax pydantic int had read `1_0` as 10, `+1`, ` 1`, `1 ` and `1.0` as 1: `/patients/1_0` answered for
    patient 10 (fix18, issue 13); `int()` itself also takes other scripts' digits (`１`, `٣`).
    """
    if not isinstance(value, str):
        return value  # a route's own default
    if not _ASCII_INT.fullmatch(value):
        raise ValueError("an integer is ASCII digits 0-9 with an optional leading '-', nothing else")
    if len(value) > _INT_TEXT_MAX:
        raise ValueError("integer out of range")
    return int(value)


def _decimal_text(value: Any) -> Any:
    """A decimal in a query string (`lat`, `lon`, `radius_m`): `numtext.ascii_decimal`'s rule (fix19)."""
    if not isinstance(value, str):
        return value  # a route's own default
    return ascii_decimal(value)


def ascii_int(value: str | None) -> int | None:
    """The same rule for a parameter read by hand (the feed socket's `?cursor=`): None if not one."""
    if value is None or len(value) > _INT_TEXT_MAX or not _ASCII_INT.fullmatch(value):
        return None
    return int(value)


def _no_control(text: str) -> str:
    if _CONTROL.search(text):
        raise ValueError("control characters are not allowed")
    return text


def _no_control_line(text: str) -> str:
    if _CONTROL_LINE.search(text):
        raise ValueError("control characters (tab, newline, NUL …) are not allowed in this field")
    return text


def _iso_text(value: Any) -> Any:
    """Times are ISO 8601 text; a bare number (`until=0.5`) is not read as seconds since 1970."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError("a time must be ISO 8601 text, e.g. 2025-01-15T10:30:00+07:00")
    return value


def _clock_text(value: Any) -> Any:
    """A time of day is text (`"20:00"`); a number (`72000`) is not read as seconds after midnight."""
    if isinstance(value, time) or (isinstance(value, str) and re.match(r"^\d{2}:\d{2}", value)):
        return value
    raise ValueError("a time of day must be text, e.g. 20:00")


def _day_text(value: Any) -> Any:
    """A calendar day in a query string is YYYY-MM-DD and nothing else (not `0`, not a time at midnight)."""
    if isinstance(value, date) or (isinstance(value, str) and _DAY_TEXT.match(value)):
        return value
    raise ValueError("a day is YYYY-MM-DD, e.g. 2025-01-15")


def _date_text(value: Any) -> Any:
    """A date is ISO 8601 text (`"1941-03-09"`); a number (`0`) is not read as seconds since 1970."""
    if isinstance(value, date) or (isinstance(value, str) and _ISO_DATE.match(value)):
        return value
    raise ValueError("a date must be ISO 8601 text, e.g. 1941-03-09")


def _query_time_text(value: Any) -> Any:
    """A query string's time: as `_iso_text`, with a `+` the URL decoding turned into a space put back."""
    value = _iso_text(value)
    return _PLUS_AS_SPACE.sub(r"\1+\2", value) if isinstance(value, str) else value


def _naive_is_bangkok(value: datetime) -> datetime:
    """A time a person gave without an offset is Asia/Bangkok time, the time everything is shown in: `10:30`
    typed in Chumphae means 10:30 there (it had been read as UTC, 17:30 in Chumphae: fix17, issue 13)."""
    return value.replace(tzinfo=BANGKOK) if value.tzinfo is None else value


def _in_window(value: datetime) -> datetime:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    try:
        utc = aware.astimezone(UTC)
    except OverflowError:
        raise ValueError("time out of range") from None
    if not EARLIEST <= utc < LATEST:
        raise ValueError(f"time must be between {EARLIEST.year} and {LATEST.year} (UTC)")
    return value


def _day_in_window(value: date) -> date:
    if not EARLIEST.date() <= value < LATEST.date():
        raise ValueError(f"date must be between {EARLIEST.year} and {LATEST.year}")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _iso_utc(value: datetime) -> str:
    """A time in an answer: UTC with `+00:00`, as the feed and every dict-built answer write it."""
    return as_utc(value).isoformat()


# -- reusable field types -------------------------------------------------------------------
# Output: the one way an answer writes a time (never pydantic's `Z`; docs/mobile-api.md "Times").
UtcTime = Annotated[datetime, PlainSerializer(_iso_utc, return_type=str, when_used="json")]
# Integers in bodies and feed messages are JSON integers: `true`, `"1"` or `1.0` are refused, not read as 1 (a
# boolean had picked record 1: docs15, issue 13)
Id = Annotated[int, Field(ge=1, le=MAX_ID, strict=True)]
# A time a machine stamped (a phone's sighting): without an offset it stays naive and the route refuses it.
When = Annotated[datetime, BeforeValidator(_iso_text), AfterValidator(_in_window), YearDoc]
# A time a person gives (a visit's `t`): without an offset it is Asia/Bangkok time (fix17, issue 13).
LocalWhen = Annotated[datetime, BeforeValidator(_iso_text), AfterValidator(_naive_is_bangkok),
                      AfterValidator(_in_window), YearDoc]
Day = Annotated[date, BeforeValidator(_day_text), AfterValidator(_day_in_window), DayDoc]
# Body dates and times of day are text, as times are: `"birth_date": 0` had been 1970-01-01 and a night `start`
# of 72000 20:00 (docs16, issue 13)
DateText = Annotated[date, BeforeValidator(_date_text)]
ClockText = Annotated[time, BeforeValidator(_clock_text)]
Finite = Annotated[float, AfterValidator(_finite)]
NoControl = AfterValidator(_no_control)
OneLine = AfterValidator(_no_control_line)
Line32 = Annotated[str, StringConstraints(max_length=32), OneLine, OneLineDoc]
Line40 = Annotated[str, StringConstraints(max_length=40), OneLine, OneLineDoc]
Line64 = Annotated[str, StringConstraints(max_length=64), OneLine, OneLineDoc]
Line200 = Annotated[str, StringConstraints(max_length=200), OneLine, OneLineDoc]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200), OneLine, OneLineDoc]
Note = Annotated[str, StringConstraints(max_length=NOTE_MAX), NoControl, NoControlDoc]
PatientNotes = Annotated[str, StringConstraints(max_length=PATIENT_NOTES_MAX), NoControl, NoControlDoc]
VisitNotes = Annotated[str, StringConstraints(max_length=4000), NoControl, NoControlDoc]
Cursor = Annotated[int, Field(ge=0, le=MAX_CURSOR, strict=True)]
AdlScore = Annotated[int, Field(ge=0, le=20, strict=True)]
NhsoGroup = Annotated[int, Field(ge=0, le=4, strict=True)]

# -- path and query parameters --------------------------------------------------------------
# Every integer a path or a query string carries ends its Annotated with AsciiInt, AFTER its Path / Query:
# a validator placed before the bounds would turn them into `ge` / `le` in the OpenAPI schema instead of
# `minimum` / `maximum`. tests/mobile/test_strict_query_ints_fix18.py checks that every route's integer has it.
AsciiInt = BeforeValidator(_int_text)
# The same for every decimal a query string carries (`lat`, `lon`, `radius_m`): `1_6.5`, `١٦.5`, ` 16.5`
# had been read as numbers (fix19).
AsciiDecimal = BeforeValidator(_decimal_text)
PatientId = Annotated[int, Path(ge=1, le=MAX_ID, description="A patient's id."), AsciiInt]
AlertId = Annotated[int, Path(ge=1, le=MAX_ID, description="An alert's id."), AsciiInt]
UserId = Annotated[int, Path(ge=1, le=MAX_ID, description="A user's id."), AsciiInt]
GatewayId = Annotated[int, Path(ge=1, le=MAX_ID, description="A gateway's id."), AsciiInt]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip."), AsciiInt]
OptionalPatientQuery = Annotated[int | None, Query(ge=1, le=MAX_ID), AsciiInt]
# A user id in a query (the district overview's `volunteer`): bounded as every id (it had taken any integer: fix17)
OptionalUserQuery = Annotated[int | None, Query(ge=1, le=MAX_ID, description="A user's id."), AsciiInt]
_QUERY_TIME = ("ISO 8601, e.g. 2025-01-15T10:30:00+07:00 (`+` written %2B in a URL); without an offset, "
               "Asia/Bangkok time (2025-01-15T10:30:00 is 10:30 in Chumphae).")
# Query times are typed by people (a filter): without an offset they are Asia/Bangkok time (fix17, issue 13).
QueryWhen = Annotated[datetime, BeforeValidator(_query_time_text), AfterValidator(_naive_is_bangkok),
                      AfterValidator(_in_window)]
Since = Annotated[QueryWhen | None, Query(description=f"At or after: {_QUERY_TIME} {_WINDOW_NOTE}",
                                          json_schema_extra={"pattern": YEAR_PATTERN})]
Until = Annotated[QueryWhen | None, Query(description=f"Before: {_QUERY_TIME} {_WINDOW_NOTE}",
                                          json_schema_extra={"pattern": YEAR_PATTERN})]


def omittable(**constraints: Any) -> Any:
    """A PATCH field that may be left out but not set to null (its column is NOT NULL)."""
    return Field(default=None, **constraints)


# -- alert actions: REST bodies and feed messages --------------------------------------------
class AckIn(BaseModel):
    note: Note | None = None


class ResolveIn(BaseModel):
    outcome: Outcome
    note: Note | None = None


# A feed message's own tag: text or a JSON integer (`true` had come back as 1 and `7.0` as 7: docs16)
Req = Annotated[str, StringConstraints(max_length=64)] | Annotated[int, Field(ge=-MAX_CURSOR, le=MAX_CURSOR,
                                                                                strict=True)] | None


class FeedAuth(BaseModel):
    """The first message of a browser's feed socket."""

    type: Literal["auth"]
    token: Annotated[str, StringConstraints(min_length=1, max_length=TOKEN_MAX)]
    cursor: Cursor | None = None


class FeedPing(BaseModel):
    type: Literal["ping"]
    req: Req = None


class FeedAck(AckIn):
    type: Literal["ack"]
    req: Req = None
    alert_id: Id


class FeedResolve(ResolveIn):
    type: Literal["resolve"]
    req: Req = None
    alert_id: Id
    outcome: Outcome = Outcome.OTHER


FeedMessage = Annotated[FeedPing | FeedAck | FeedResolve, Field(discriminator="type")]
FEED_MESSAGE_MAX = 16_384  # characters in one client frame (a note of 1,000 Thai characters fits easily)
