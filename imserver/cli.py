"""Helpers shared by the management commands."""

import re
from datetime import timedelta

from django.core.management.base import CommandError

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_age(text, option="--older-than"):
    """'24h' -> timedelta(hours=24); a CommandError naming the option for anything else."""
    match = re.fullmatch(r"(\d+)([smhd])", text or "")
    if not match:
        raise CommandError(f"{option} takes a number and a unit (s, m, h, d), e.g. 24h or 7d; got {text!r}")
    return timedelta(**{UNITS[match[2]]: int(match[1])})
