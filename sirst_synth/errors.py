"""Every error the tool reports to a user, as one hierarchy.

Each is a :class:`SirstSynthError`: the CLI prints its message as one line ``error: <message>``
and exits with status 1 (a traceback only with ``-v``). A message names the file or id and what
is wrong with it. Grouped by the layer that raises them.
"""
from __future__ import annotations

from collections.abc import Sequence


class SirstSynthError(ValueError):
    """An error about the user's input or output: its message names the file or id and the problem."""


# -- parameters and plan ----------------------------------------------------------------------------

class ParamError(SirstSynthError):
    """A parameter outside its range (``--alpha 2``, an even ``--s``)."""


class PlanError(SirstSynthError):
    """The requested plan cannot be made (e.g. too few noise patches for the rounds asked)."""


# -- storage ------------------------------------------------------------------------------------------

class DatasetError(SirstSynthError):
    """The dataset's layout or split lists are not usable."""


class ImageError(SirstSynthError):
    """A file that is not a readable 8-bit image."""


class WriteError(SirstSynthError):
    """A file that cannot be written (full disk, unwritable folder, ...)."""


class NoiseBankError(SirstSynthError):
    """A noise bank that is missing, empty or unreadable."""


class RecordError(SirstSynthError):
    """A ``sirst-synth.json`` build record that cannot be read."""


# -- running --------------------------------------------------------------------------------------------

class SourceProblems(SirstSynthError):
    """Bad source ids, one line each (``problems``), with what to do about them (``hint``)."""

    def __init__(self, problems: Sequence[object], skippable: bool = True):
        self.problems = list(problems)
        self.hint = "fix them or pass --skip-invalid" if skippable else "fix the split lists"
        super().__init__("\n".join(str(p) for p in problems))


class OutputError(SirstSynthError):
    """An output folder or file the tool refuses to write."""


class ResumeError(SirstSynthError):
    """An output folder that ``--resume`` cannot finish."""


class BusyError(OutputError):
    """An output another running command is writing (its lock is held): names that process."""


class BackendError(SirstSynthError):
    """A worker backend that cannot be used (missing extra, unreachable scheduler)."""


# -- import and export -----------------------------------------------------------------------------------

class IdError(SirstSynthError):
    """An id that cannot name a file inside the dataset."""


class ExportError(SirstSynthError):
    """A dataset that cannot be exported as asked."""


class ImportProblems(SirstSynthError):
    """Problems found in a release; each line names the file or id. Nothing has been written."""

    def __init__(self, lines: list[str], hint: str = "nothing was written"):
        self.lines = lines
        self.hint = hint
        one = lines[0] + ("" if hint == "nothing was written" else f"; {hint}")
        super().__init__(one if len(lines) == 1 else f"{len(lines)} problems in the release; {hint}")

    def shown(self, limit: int = 10) -> list[str]:
        """The first ``limit`` lines, then how many more there are."""
        more = [f"... and {len(self.lines) - limit} more"] if len(self.lines) > limit else []
        return self.lines[:limit] + more


# -- online transforms -----------------------------------------------------------------------------------

class TransformError(SirstSynthError):
    """An input an online transform cannot use (a colour image, a mask of another size, an image
    smaller than the window, a noise bank holding a test image's patches)."""


# -- inspecting -------------------------------------------------------------------------------------------

class VerifyError(SirstSynthError):
    """A folder ``verify`` cannot check at all (not a folder, no manifest)."""


class PreviewError(SirstSynthError):
    """A dataset, id or sheet path the preview cannot use."""


# -- training ---------------------------------------------------------------------------------------------

class TrainError(SirstSynthError):
    """A training run that cannot start as asked."""


class CheckpointError(SirstSynthError):
    """A file that is not a sirst-synth checkpoint."""
