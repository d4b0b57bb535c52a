"""The words a batch decides and reports with, as enums that are also their text.

Each member is a ``str`` equal to its value, and prints, formats, hashes, pickles and
serialises to JSON as that value, on every Python version (a plain ``(str, Enum)`` formats
as ``Status.DONE`` on 3.11 and later): JSON lines, records on disk, messages and comparisons
with the old strings (``result.status == "done"``) are what they were when statuses were plain
strings.
"""
from __future__ import annotations

import enum


class TextEnum(str, enum.Enum):
    """A str enum that is its value wherever text is expected."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __repr__(self) -> str:  # results read as they did: ('done', 25, [...])
        return repr(self.value)

    def __hash__(self) -> int:  # equal to its value, so hashed as it is: {"done": ...}[DONE] works
        return hash(self.value)


class FileStatus(TextEnum):
    """What happened to one input of a batch (:class:`enhancer.FileResult` ``.status``)."""

    DONE = "done"  # made by this run
    SKIPPED = "skipped"  # done in an earlier run, or the output exists
    BUSY = "busy"  # another run is making it
    FAILED = "failed"
    PLANNED = "planned"  # --dry-run: a real run would make it


class RecordStatus(TextEnum):
    """How an output ended, as its record in the output folder keeps it (:mod:`enhancer.batch.state`)."""

    DONE = "done"
    INCOMPLETE = "incomplete"  # made, from an input that held fewer frames than its container announced
    FAILED = "failed"


class Decision(TextEnum):
    """What to do with one job, given what the output folder's records remember."""

    RUN = "run"  # nothing recorded
    REDO = "redo"  # recorded, but the input or the recipe changed: our own output is replaced
    SKIP = "skip"  # done with this very recipe
    SKIP_INCOMPLETE = "skip-incomplete"  # made with this recipe from an input that was incomplete
    FAILED_BEFORE = "failed-before"  # failed with this recipe; retried only with --retry-failed
    OTHER_INPUT = "other-input"  # the output exists, made from another input file: replaced only with --overwrite
    CHANGED = "changed"  # a file other than the one recorded is under the output's name: replaced only with --overwrite
