"""Runners of the price and match stages: local (a process pool over day partitions), spark."""

from __future__ import annotations

from reconcile.engines.base import Runner, Staged
from reconcile.engines.local import LocalRunner, WholeRunner
from reconcile.settings import Settings

__all__ = ["LocalRunner", "Runner", "Staged", "WholeRunner", "choose_runner"]


def choose_runner(settings: Settings) -> Runner:
    """The runner `settings.engine` names (spark is imported only when chosen)."""
    if settings.engine == "spark":
        from reconcile.engines.spark import SparkRunner

        return SparkRunner(master=settings.spark_master, scratch=settings.spark_scratch)
    return LocalRunner()
