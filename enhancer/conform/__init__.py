"""``enhancer conform``: enhance only the frames an edit uses, and hand back the edit relinked to them.

:mod:`~enhancer.conform.edit` reads and writes edits (OpenTimelineIO and its adapters);
:mod:`~enhancer.conform.plan` turns an edit's events into ranges of source frames, each an
ordinary batch job; :mod:`~enhancer.conform.run` runs them as ``enhance`` runs files and writes
the relinked edit.
"""
from enhancer.conform.plan import DEFAULT_HANDLES, Conform, Range, plan_conform  # noqa: F401
from enhancer.conform.run import complete, dry_run, report, run  # noqa: F401
