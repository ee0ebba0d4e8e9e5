"""The lock a command holds while it writes an output, so two runs never write one output.

An exclusive ``fcntl.flock`` on a lock file (:func:`sirst_synth.store.layout.lock_path`): inside
an output folder (``OUT/.sirst-synth-lock``), or beside a file output or a folder that is replaced
whole by a rename (``.OUT.sirst-synth-lock``). The holder writes its pid and command line into the
file, so a second command is refused at once with one line naming it. The kernel drops the lock
when its process dies, so the file a killed run leaves never blocks ``--resume`` or ``--force``:
the next run takes it over. A run that ends removes the file.
"""
from __future__ import annotations

import fcntl
import json
import os
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType

from sirst_synth.errors import BusyError, OutputError
from sirst_synth.run.folder import make_folder
from sirst_synth.store.layout import lock_path

#: how long a refused command waits for the holder to write its pid into a new lock file
_HOLDER_WAIT_S = 0.5


#: the arguments the CLI was invoked with (set by :func:`set_command_line`)
_invoked: list[str] | None = None


def set_command_line(args: Sequence[str]) -> None:
    """Record the CLI's arguments (the CLI calls it), for :func:`command_line`."""
    global _invoked
    _invoked = list(args)


def command_line() -> str:
    """The running command as a user typed it (``sirst-synth build ...``)."""
    if _invoked is not None:
        return shlex.join(["sirst-synth", *_invoked])
    argv = sys.argv
    prog = Path(argv[0]).name if argv else ""
    if prog in ("sirst-synth", "__main__.py", "sirst_synth"):
        return shlex.join(["sirst-synth", *argv[1:]])
    return shlex.join(argv)


def _holder(path: Path) -> str:
    """'pid N: COMMAND' of the process holding ``path``, read from the file."""
    deadline = time.monotonic() + _HOLDER_WAIT_S
    while True:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return f"pid {int(data['pid'])}: {data['command']}"
        except (OSError, ValueError, KeyError, TypeError):
            if time.monotonic() >= deadline:
                return "pid unknown"
            time.sleep(0.02)


def _busy(out: Path, path: Path) -> BusyError:
    return BusyError(f"{out}: in use by a running sirst-synth ({_holder(path)}); "
                     "wait for it to end (or stop it) and run again")


def check_not_running(out: Path) -> None:
    """Raise :class:`BusyError` when a live process holds either lock of ``out`` (inside or
    beside it, whichever command took it); writes nothing."""
    for path in (lock_path(out, inside=True), lock_path(out, inside=False)):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue  # no lock file (or none readable): nobody is writing there
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(out, path) from None
        finally:
            os.close(fd)  # closing drops a lock taken just now


class OutputLock:
    """The lock of one output: :meth:`acquire` (or ``with``), then :meth:`release`."""

    def __init__(self, out: Path, path: Path):
        self.out = out
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        """Take the lock (its folder must exist) or raise :class:`BusyError` naming the holder."""
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise OutputError(f"{self.path}: cannot create the output's lock ({exc.strerror})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise _busy(self.out, self.path) from None
            try:  # the previous holder may have removed the file between our open and our flock
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps({"pid": os.getpid(), "command": command_line()}) + "\n").encode("utf-8"))
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file, then drop the lock (nothing when not held)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire() if self._fd is None else self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def folder_lock(out: Path) -> OutputLock:
    """The lock inside the output folder ``out`` (see :func:`sirst_synth.store.layout.lock_path`)."""
    return OutputLock(out, lock_path(out, inside=True))


def beside_lock(out: Path) -> OutputLock:
    """The lock beside the output ``out`` (a file, or a folder replaced whole)."""
    return OutputLock(out, lock_path(out, inside=False))


@contextmanager
def locked_folder(out: Path) -> Iterator[OutputLock]:
    """Create the output folder ``out`` when needed and hold its lock inside; on the way out,
    drop the lock, and the folder too when this call made it and nothing else was written."""
    created = not out.exists()
    make_folder(out)
    lock = folder_lock(out)
    try:
        with lock:
            yield lock
    finally:
        if created:
            with suppress(OSError):
                out.rmdir()  # only when empty


@contextmanager
def locked_beside(out: Path) -> Iterator[OutputLock]:
    """Hold the lock beside the output ``out``. Its parent folder is created when needed, and
    removed again (with the folders made for it) when nothing was written there."""
    parent = out.absolute().parent
    made = [p for p in (parent, *parent.parents) if not p.exists()]
    make_folder(out.parent)
    try:
        with beside_lock(out) as lock:
            yield lock
    finally:
        for folder in made:  # deepest first; only empty ones go
            try:
                folder.rmdir()
            except OSError:
                break
