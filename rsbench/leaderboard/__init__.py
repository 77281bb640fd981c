"""Leaderboards and comparisons built from evaluation records (``compare``) with intervals (``stats``)."""

from rsbench.leaderboard.compare import Cell, compare, render
from rsbench.leaderboard.stats import bootstrap_interval, paired_difference, seed_interval

__all__ = ["Cell", "bootstrap_interval", "compare", "paired_difference", "render", "seed_interval"]
