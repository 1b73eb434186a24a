"""Financial years and months: one way to name and count them everywhere.

A financial year is named by the calendar year it starts in (2024 = 2024/25, April to
March); the calendar counts months from 1 April of the base year.
"""

from __future__ import annotations

APRIL = 4


def financial_year(year: int) -> str:
    """2024 -> '2024/25', as NHS England writes financial years."""
    year = int(year)
    return f"{year}/{(year + 1) % 100:02d}"


def month_index(year: int, month: int, base_year: int) -> int:
    """Months since 1 April of `base_year` for calendar `month` (1..12) of calendar `year`."""
    return 12 * (year - base_year) + month - APRIL


def month_of(t: int, base_year: int) -> tuple[int, int]:
    """(financial year, calendar month 1..12) of calendar time `t` (months since April)."""
    return base_year + t // 12, (t + APRIL - 1) % 12 + 1
