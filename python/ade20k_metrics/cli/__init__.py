"""The command line, on top of everything: ``ade20k-metrics`` (main.py), its leaderboard and benchmark runner."""
from .main import main

__all__ = ["main"]
