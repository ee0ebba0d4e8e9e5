"""Writing a whole output folder safely: into a temporary folder next to it, renamed at the end.

A command that fails or is interrupted leaves no folder that looks complete: the final name
appears only once every file is written. An existing output is replaced only with ``force``, and
then only what the tool wrote there (:mod:`sirst_synth.run.owned`): other files stay.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sirst_synth.errors import OutputError
from sirst_synth.run.folder import inside, make_folder
from sirst_synth.run.owned import refuse_foreign, replace_folder, survey


def check_output(out: Path, src: Path, force: bool, hint: str = "choose another -o") -> None:
    """Refuse ``out`` inside (or equal to) ``src``, ``src`` inside ``out``, a file, a folder holding
    foreign files and no record of the tool (even with ``force``), and a non-empty folder unless
    ``force``. ``hint``: what to do instead (``choose another --name`` for a dataset folder). Writes nothing."""
    out_r, src_r = out.resolve(), src.resolve()
    if inside(out_r, src_r):
        raise OutputError(f"{out}: output folder is the source or inside it ({src}); {hint}")
    if inside(src_r, out_r):
        raise OutputError(f"{out}: output folder holds the source {src}; {hint}")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        found = survey(out)
        refuse_foreign(found, f"{hint} (--force replaces only what sirst-synth wrote)")
        if not force:
            what = "holds an earlier output of sirst-synth" if found.records else "is not empty (empty folders only)"
            raise OutputError(f"{out}: {what}; use --force to replace what sirst-synth wrote there (other files "
                              f"stay), or {hint}")


@contextmanager
def staged_folder(out: Path, what: str = "export") -> Iterator[Path]:
    """Yield a fresh temporary folder next to ``out``; on success it replaces ``out``
    (:func:`~sirst_synth.run.owned.replace_folder`: the tool's files only, foreign ones stay).

    On any error the temporary folder is removed and ``out`` is left as it was.
    """
    parent = out.absolute().parent
    make_folder(parent)
    tmp = parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        replace_folder(tmp, out.absolute(), what)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def link_or_copy(src: str | Path, dst: str | Path, copy: bool) -> bool:
    """Hard-link ``src`` to ``dst`` (a copy with ``copy`` or where links fail); True if linked."""
    if not copy:
        try:
            os.link(src, dst)
            return True
        except OSError:
            pass
    shutil.copyfile(src, dst)
    return False


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 text with LF line ends (the folder is temporary, so no atomic rename is needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def id_list_text(ids: list[str]) -> str:
    """One id per line, LF, final newline (empty text for no id)."""
    return "".join(f"{i}\n" for i in ids)
