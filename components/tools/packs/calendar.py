"""Out-of-domain pack ``calendar``: date arithmetic on ISO dates (YYYY-MM-DD).

The student never sees these tools or this phrasing in training. Tasks need 1 to
3 calls; questions about two independent dates need two calls in one turn.
Answers are ISO dates, day counts, or weekday names.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any, ClassVar

from components.tools.packs.plans import Answer, call, choice
from components.tools.packs.templated import Draft, Template, TemplatePack
from components.tools.tool import Tool, tool_from_function

MAX_DAYS = 1_000_000
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _parse(date: str) -> dt.date:
    if not isinstance(date, str) or len(date) != 10:
        raise ValueError(f"invalid date {str(date)[:40]!r}: use YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(date)
    except ValueError:
        raise ValueError(f"invalid date {date!r}: use YYYY-MM-DD") from None


def add_days(date: str, days: int) -> str:
    """The date a number of days after (or, if negative, before) a given date.

    Args:
        date: The starting date, YYYY-MM-DD.
        days: How many days to add; negative to go back.
    """
    if abs(days) > MAX_DAYS:
        raise ValueError(f"days must be at most {MAX_DAYS} in magnitude")
    try:
        return (_parse(date) + dt.timedelta(days=days)).isoformat()
    except OverflowError:
        raise ValueError("resulting date is out of range") from None


def days_between(start: str, end: str) -> int:
    """The number of days from start to end (negative if end is earlier).

    Args:
        start: The first date, YYYY-MM-DD.
        end: The second date, YYYY-MM-DD.
    """
    return (_parse(end) - _parse(start)).days


def weekday(date: str) -> str:
    """The day of the week (Monday ... Sunday) a date falls on.

    Args:
        date: The date, YYYY-MM-DD.
    """
    return WEEKDAYS[_parse(date).weekday()]


def days_in_month(year: int, month: int) -> int:
    """How many days a month has in a given year (leap years included).

    Args:
        year: The year, e.g. 2024.
        month: The month number, 1 for January to 12 for December.
    """
    if not 1 <= year <= 9999 or not 1 <= month <= 12:
        raise ValueError("year must be 1..9999 and month 1..12")
    first = dt.date(year, month, 1)
    following = dt.date(year + 1, 1, 1) if month == 12 else dt.date(year, month + 1, 1)
    return (following - first).days


CALENDAR_FUNCTIONS = (add_days, days_between, weekday, days_in_month)
CALENDAR_TOOLS: tuple[Tool, ...] = tuple(tool_from_function(fn) for fn in CALENDAR_FUNCTIONS)
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
EVENTS = ("conference", "festival", "exhibition", "training course", "road trip", "sabbatical")

P = dict[str, Any]


def _date(rng: random.Random) -> str:
    start = dt.date(2000, 1, 1).toordinal()
    return dt.date.fromordinal(rng.randint(start, start + 31 * 365)).isoformat()


def _later(date: str, rng: random.Random, low: int, high: int) -> str:
    return (dt.date.fromisoformat(date) + dt.timedelta(days=rng.randint(low, high))).isoformat()


def _longest(values: list[Any]) -> int:
    return max(int(v) for v in values)


def _as_list(values: list[Any]) -> list[str]:
    return [str(v) for v in values]


# --- difficulty 1 --------------------------------------------------------------------


def _date_after_sample(rng: random.Random) -> P:
    return {"date": _date(rng), "days": rng.choice((1, -1)) * rng.randint(1, 400)}


def _date_after_build(p: P) -> Draft:
    days = p["days"]
    when = f"{days} days after" if days > 0 else f"{-days} days before"
    prompt = f"Which date is {when} {p['date']}? Answer in YYYY-MM-DD format."
    return Draft(prompt, call("add_days", date=p["date"], days=days), answer_kind="date")


def _span_sample(rng: random.Random) -> P:
    start = _date(rng)
    return {"event": rng.choice(EVENTS), "start": start, "end": _later(start, rng, 1, 900)}


def _span_build(p: P) -> Draft:
    prompt = f"A {p['event']} is planned from {p['start']} to {p['end']}. How many days are there from the start date to the end date?"
    return Draft(prompt, call("days_between", start=p["start"], end=p["end"]))


def _weekday_sample(rng: random.Random) -> P:
    return {"date": _date(rng)}


def _weekday_build(p: P) -> Draft:
    prompt = f"On which day of the week did {p['date']} fall?"
    return Draft(prompt, call("weekday", date=p["date"]), answer_kind="text")


def _month_length_sample(rng: random.Random) -> P:
    return {"year": rng.randint(1896, 2104), "month": rng.choice((2, 2, rng.randint(1, 12)))}


def _month_length_build(p: P) -> Draft:
    prompt = f"How many days did {MONTHS[p['month'] - 1]} {p['year']} have?"
    return Draft(prompt, call("days_in_month", year=p["year"], month=p["month"]))


# --- difficulty 2 --------------------------------------------------------------------


def _weekday_after_sample(rng: random.Random) -> P:
    return {"date": _date(rng), "days": rng.randint(2, 1000)}


def _weekday_after_build(p: P) -> Draft:
    prompt = f"A parcel was posted on {p['date']} and arrives {p['days']} days later. On which day of the week does it arrive?"
    return Draft(prompt, call("weekday", date=call("add_days", date=p["date"], days=p["days"])), answer_kind="text")


def _longer_trip_sample(rng: random.Random) -> P:
    a, b = _date(rng), _date(rng)
    a_end, b_end = _later(a, rng, 2, 60), _later(b, rng, 2, 60)
    return {"a": a, "a_end": a_end, "b": b, "b_end": b_end}


def _longer_trip_build(p: P) -> Draft:
    prompt = (
        f"Trip one runs from {p['a']} to {p['a_end']} and trip two from {p['b']} to {p['b_end']}. "
        "Counting days from departure date to return date, how many days does the longer trip last?"
    )
    one = call("days_between", start=p["a"], end=p["a_end"])
    two = call("days_between", start=p["b"], end=p["b_end"])
    return Draft(prompt, Answer((one, two), _longest))


def _two_weekdays_sample(rng: random.Random) -> P:
    return {"first": _date(rng), "second": _date(rng)}


def _two_weekdays_build(p: P) -> Draft:
    prompt = (
        f"On which days of the week do {p['first']} and {p['second']} fall? "
        "Answer with the two weekday names in that order, separated by a comma."
    )
    first, second = call("weekday", date=p["first"]), call("weekday", date=p["second"])
    return Draft(prompt, Answer((first, second), _as_list), answer_kind="list")


# --- difficulty 3 --------------------------------------------------------------------


def _grace_sample(rng: random.Random) -> P:
    return {"date": _date(rng), "term": rng.randint(10, 400), "grace": rng.randint(3, 60)}


def _grace_build(p: P) -> Draft:
    prompt = (
        f"A loan starts on {p['date']} and runs for {p['term']} days; after it ends there is a grace period of {p['grace']} days. "
        "On which weekday does the grace period end (the date reached by adding both periods)?"
    )
    end = choice(
        call("add_days", date=call("add_days", date=p["date"], days=p["term"]), days=p["grace"]),
        call("add_days", date=call("add_days", date=p["date"], days=p["grace"]), days=p["term"]),
    )
    return Draft(prompt, call("weekday", date=end), answer_kind="text")


def _deadline_gap_sample(rng: random.Random) -> P:
    a = _date(rng)
    return {"a": a, "a_days": rng.randint(5, 200), "b": _later(a, rng, 0, 200), "b_days": rng.randint(5, 200)}


def _deadline_gap_build(p: P) -> Draft:
    prompt = (
        f"Report A is due {p['a_days']} days after {p['a']} and report B is due {p['b_days']} days after {p['b']}. "
        "How many days after report A's due date is report B due (negative if B is due first)?"
    )
    due_a = call("add_days", date=p["a"], days=p["a_days"])
    due_b = call("add_days", date=p["b"], days=p["b_days"])
    return Draft(prompt, call("days_between", start=due_a, end=due_b))


CALENDAR_TEMPLATES: tuple[Template, ...] = (
    Template("date_after", 1, _date_after_sample, _date_after_build),
    Template("span", 1, _span_sample, _span_build),
    Template("weekday_of", 1, _weekday_sample, _weekday_build),
    Template("month_length", 1, _month_length_sample, _month_length_build),
    Template("weekday_after", 2, _weekday_after_sample, _weekday_after_build),
    Template("longer_trip", 2, _longer_trip_sample, _longer_trip_build),
    Template("two_weekdays", 2, _two_weekdays_sample, _two_weekdays_build),
    Template("grace_end", 3, _grace_sample, _grace_build),
    Template("deadline_gap", 3, _deadline_gap_sample, _deadline_gap_build),
)


class CalendarPack(TemplatePack):
    """Date arithmetic with ISO dates (out of domain)."""

    name: ClassVar[str] = "calendar"
    description: ClassVar[str] = (
        "You have calendar tools that work on ISO dates (YYYY-MM-DD): adding days, counting days between dates, weekdays and month lengths."
    )
    difficulties: ClassVar[tuple[int, ...]] = (1, 2, 3)
    templates: ClassVar[tuple[Template, ...]] = CALENDAR_TEMPLATES
    parallel: ClassVar[str] = "always"

    def tool_list(self) -> list[Tool]:
        """The four calendar tools (stateless)."""
        return list(CALENDAR_TOOLS)


PACK = CalendarPack()
