"""The ``sirst-synth`` group and what every command shares: global flags, the one error format
(``error: <what is wrong and where>``, exit status 1), option checks and the shared options.

Click only: numpy, OpenCV, h5py and torch are imported inside the commands that need them.
"""
from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from sirst_synth import __version__
from sirst_synth.errors import ParamError, SirstSynthError, SourceProblems
from sirst_synth.method.choices import FITS
from sirst_synth.plan.params import RANGES, Range
from sirst_synth.progress import Progress, silent

log = logging.getLogger("sirst_synth")


class Settings:
    """Global flags of the group, stored on the click context."""

    def __init__(self, verbose: bool, quiet: bool):
        self.verbose = verbose
        self.quiet = quiet

    @property
    def progress(self) -> bool:
        return not self.quiet and sys.stderr.isatty()

    def bars(self, shown: bool = True) -> Progress:
        """Where a command's progress shows (:mod:`sirst_synth.progress`): click's bars on stderr, or
        nothing with ``-q``, when stderr is not a terminal, or when not ``shown``."""
        if not (shown and self.progress):
            return silent
        return lambda label, length: click.progressbar(length=length, label=label, file=sys.stderr)


def settings() -> Settings:
    """The group's flags of the running command (defaults outside a command)."""
    ctx = click.get_current_context()
    return ctx.find_object(Settings) or Settings(False, False)


def friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the tool's own errors, and file system errors, into one line per problem and exit
    status 1 (traceback with -v)."""
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (SirstSynthError, OSError) as exc:
            if settings().verbose:
                raise
            if isinstance(exc, SourceProblems):
                lines = [str(p) for p in exc.problems]
            elif isinstance(exc, OSError):
                lines = [f"{exc.filename or 'file system'}: {exc.strerror or exc}"]
            else:
                lines = [str(exc)]
            for line in lines:
                click.echo(f"error: {line}", err=True)
            if isinstance(exc, SourceProblems):
                click.echo(f"error: {len(exc.problems)} bad source id(s); {exc.hint}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            hint = "; nothing is marked complete (finish with --resume)" if _resumable() else ""
            click.echo(f"error: interrupted{hint}", err=True)
            sys.exit(130)

    return wrapper


def _resumable() -> bool:
    """Whether the running command has ``--resume`` and an unfinished run lies in its output (the
    folder -o, the staging folder ``OUT.building/`` of a file or a layout, or one inside -o): only
    then can ``--resume`` finish what Ctrl-C cut short."""
    from sirst_synth.store.layout import state_dir

    ctx = click.get_current_context(silent=True)
    if ctx is None or not any(p.name == "resume" for p in ctx.command.params) or not ctx.params.get("out"):
        return False
    out = Path(ctx.params["out"])
    candidates = [out, out.with_name(out.name + ".building")]
    if out.is_dir():
        candidates += [p for p in out.iterdir() if p.name.endswith(".building")]
    return any(state_dir(p).is_dir() for p in candidates)


class OptionValueError(click.ClickException):
    """An option value out of its range: one line, exit status 1 (like every bad input)."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def in_range(low: float | None = None, high: float | None = None, odd: bool = False) -> Callable[..., Any]:
    """A click callback refusing values outside [low, high] (and even values with ``odd``)."""
    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None:
            name = param.opts[-1] if param.opts else str(param.name)
            checked(Range(name, low, high, odd), value)
        return value

    return check


class _Refusing:
    """Click's number range types, refusing a value out of range as every bad option value is: one
    ``error: --OPTION must be ..., got V`` line (:class:`~sirst_synth.plan.params.Range`), exit
    status 1 (click's own exit 2, with its usage text). A value that is no number is click's error."""

    number: click.ParamType

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = self.number.convert(value, param, ctx)
        name = (param.opts[-1] if param.opts else str(param.name)) if param is not None else "value"
        bounds: Any = self  # click's range: min, max, min_open, max_open
        checked(Range(name, bounds.min, bounds.max, low_open=bounds.min_open, high_open=bounds.max_open), number)
        return number


class IntInRange(_Refusing, click.IntRange):
    number = click.INT


class FloatInRange(_Refusing, click.FloatRange):
    number = click.FLOAT


def refusing(kind: click.ParamType) -> click.ParamType:
    """``kind``, made :class:`_Refusing` when it is one of click's (unclamped) number ranges."""
    if isinstance(kind, click.IntRange | click.FloatRange) and not isinstance(kind, _Refusing) and not kind.clamp:
        cls: Any = IntInRange if isinstance(kind, click.IntRange) else FloatInRange
        return cls(kind.min, kind.max, kind.min_open, kind.max_open)
    return kind


def method_range(name: str) -> Callable[..., Any]:
    """A click callback checking method parameter ``name`` against its range in :data:`sirst_synth.plan.params.RANGES`."""
    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None:
            checked(RANGES[name], value)
        return value

    return check


def checked(rng: Range, value: float) -> None:
    try:
        rng.check(value)
    except ParamError as exc:
        raise OptionValueError(str(exc)) from None


def summary(text: str, err: bool = False) -> None:
    """Print a command's closing line unless -q (``err``: on stderr, for commands whose stdout is a report)."""
    if not settings().quiet:
        click.echo(text, err=err)


# -- help a person can scan ---------------------------------------------------------------------

#: the longest short help of a command (its docstring's first line): what the group's --help shows whole
SHORT_HELP = 45
#: the widest option names beside their help (click's default); longer ones get a line of their own
COLUMN = 30


class HelpCommand(click.Command):
    """Every command of the group: its --help lists the options in sections (:func:`option_groups`;
    ``-h/--help`` and any option no section names close the list under "Other options"), and its
    short help in the group's --help is its docstring's first line, whole."""

    #: section title -> the names of its options (click's parameter names), in the order shown
    sections: dict[str, tuple[str, ...]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:  # a range error exits 1 with one line, whichever command
            param.type = refusing(param.type)

    def get_short_help_str(self, limit: int = SHORT_HELP) -> str:
        if self.short_help:
            return self.short_help
        return (self.help or "").strip().split("\n", 1)[0].strip().rstrip(".")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        options = {p.name: p for p in self.get_params(ctx) if isinstance(p, click.Option)}
        sections: list[tuple[str, list[tuple[str, str]]]] = []
        placed: set[str | None] = set()
        for title, names in [*self.sections.items(), ("Other options", tuple(options))]:
            rows = []
            for name in names:
                record = options[name].get_help_record(ctx) if name in options and name not in placed else None
                placed.add(name)
                if record is not None:
                    rows.append(record)
            if rows:
                sections.append((title, rows))
        # one column of option names for all sections (click aligns each list on its own)
        width = min(max((len(term) for _, rows in sections for term, _ in rows), default=0), COLUMN)
        for title, rows in sections:
            with formatter.section(title):
                formatter.write_dl([(term.ljust(width), text) for term, text in rows], col_max=COLUMN)


def option_groups(sections: dict[str, tuple[str, ...]]) -> Callable[[click.Command], click.Command]:
    """Give a command's --help its option sections: title -> option names, in order (decorate the
    command, above ``@main.command``). A name the command lacks is passed over."""
    def mark(command: click.Command) -> click.Command:
        command.sections = sections  # type: ignore[attr-defined]
        return command

    return mark


class _Group(click.Group):
    """The group, recording its arguments for the lock and run log (``sirst_synth.run.lock.command_line``).
    Its commands are :class:`HelpCommand`."""

    command_class = HelpCommand

    def main(self, args: Any = None, *rest: Any, **kwargs: Any) -> Any:
        from sirst_synth.run.lock import set_command_line

        set_command_line(sys.argv[1:] if args is None else [str(a) for a in args])
        return super().main(args, *rest, **kwargs)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sirst-synth")
@click.option("-v", "--verbose", is_flag=True, help="Log details; show tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars and no summary line.")
@click.pass_context
def main(ctx: click.Context, verbose: bool, quiet: bool) -> None:
    """Synthesise SIRST training data: noise sampling, Noise2Noise displacement, negatives."""
    ctx.obj = Settings(verbose, quiet)
    logging.addLevelName(logging.WARNING, "warning")
    logging.addLevelName(logging.INFO, "info")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    log.setLevel(logging.DEBUG if verbose else logging.WARNING)
    if not verbose:  # joblib's notes on results left unused by a run stopped early are not the user's business
        warnings.filterwarnings("ignore", category=UserWarning, module=r"joblib(\.|$)")


# -- shared options ---------------------------------------------------------------------------

def source_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--src, --split, --train-list, --test-list."""
    fn = click.option("--test-list", default="test.txt", show_default=True, help="Test list file name in the split folder.")(fn)
    fn = click.option("--train-list", default="train.txt", show_default=True,
                      help="Train list file name in the split folder (SIRST: trainval.txt).")(fn)
    fn = click.option("--split", default="50_50", show_default=True, help="Folder of the split lists.")(fn)
    fn = click.option("--src", required=True, type=click.Path(path_type=Path), help="Source dataset folder.")(fn)
    return fn


def check_jobs(ctx: click.Context, param: click.Parameter, value: int) -> int:
    """Refuse -j 0 (a click callback)."""
    if value == 0:
        raise OptionValueError("-j 0 means 0 workers; use N > 0, or -1 for all cores (-2: all but one)")
    return value


def run_options(fn: Callable[..., Any], resume: bool = True) -> Callable[..., Any]:
    """-j, --backend, --scheduler, --skip-invalid, --force, --resume (not with ``resume=False``:
    a command that writes its output in one piece at the end has nothing to resume)."""
    if resume:
        fn = click.option("--resume", is_flag=True,
                          help="Finish an interrupted run in the output folder (same parameters and source required).")(fn)
    fn = click.option("--force", is_flag=True, help="Replace an existing output (its files written by this tool).")(fn)
    fn = click.option("--scheduler", metavar="ADDRESS",
                      help="dask.distributed scheduler for --backend dask, e.g. tcp://10.0.0.5:8786.")(fn)
    fn = click.option("--backend", type=click.Choice(["local", "dask"]), default="local", show_default=True,
                      help="Where workers run: local processes, or a dask cluster (extra [dask]; "
                           "workers must reach --src and -o by the same paths).")(fn)
    fn = click.option("--skip-invalid", is_flag=True,
                      help="Leave out bad source ids (recorded in sirst-synth.json) instead of stopping.")(fn)
    fn = click.option("-j", "--jobs", "n_jobs", default=-1, show_default=True, type=int, callback=check_jobs,
                      help="Worker processes (-1: all cores). Outputs do not depend on it.")(fn)
    return fn


def noise_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--grid, --max-var, --max-mean."""
    fn = click.option("--max-mean", default=255.0, show_default=True, type=float, callback=method_range("max_mean"),
                      help="Keep regions with 0 < mean < this.")(fn)
    fn = click.option("--max-var", default=50.0, show_default=True, type=float, callback=method_range("max_var"),
                      help="Keep regions with 0 < variance < this.")(fn)
    fn = click.option("--grid", default=8, show_default=True, type=int, callback=method_range("grid"),
                      help="Regions per side (each region needs at least 2x2 pixels).")(fn)
    return fn


FIT = click.Choice(FITS)


def alpha_option(default: float | None = None, when: str = "") -> Callable[..., Any]:
    """--alpha, with ``default`` (else required); ``when`` opens its help (the method options of
    every command are declared here, once: --alpha, --s, --fit)."""
    extra = {"default": default, "show_default": True} if default is not None else {"required": True}
    return click.option("--alpha", type=float, callback=method_range("alpha"),
                        help=f"{when}Noise weight a in I_mix = a*N + (1-a)*I, in [0, 1].", **extra)


def fit_option(when: str = "") -> Callable[..., Any]:
    return click.option("--fit", default="resize", show_default=True, type=FIT,
                        help=f"{when}Fit the patch to the image: bilinear resize, or tile (keeps its grain).")


def s_option(when: str = "") -> Callable[..., Any]:
    return click.option("--s", "s", default=3, show_default=True, type=int, callback=method_range("s"),
                        help=f"{when}Window side (odd) rotated around each target.")


def channels_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--channels", type=click.Choice(["1", "3"]), default="1", show_default=True,
                        callback=lambda ctx, param, value: int(value),
                        help="Channels of generated images: 1 (8-bit gray, what the method computes) or 3 (R=G=B, "
                             "for loaders that need three channels). Originals stay byte copies.")(fn)


def seed_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--seed", default=0, show_default=True, type=int, callback=method_range("seed"),
                        help="Seed of every random draw (noise patches, plan order): same seed, same bytes.")(fn)
