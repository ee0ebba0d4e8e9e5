"""The first hour goes right: each failure a newcomer meets is one line naming the right
thing (no traceback, no library text), the inspecting commands end with a summary line with
seconds, and --help is grouped, described and has an example for every command."""
from __future__ import annotations

import json
import re
import shutil
import signal
import warnings
from pathlib import Path

import click
import numpy as np
import pytest

from sirst_synth.cli import main
from sirst_synth.progress import silent
from sirst_synth.store.layout import state_dir

from conftest import DATASETS, run_cli
from support import ids

LIBRARY_TEXT = ("Traceback", "BytesIO", " object at 0x", "UserWarning", "warnings.warn", "Usage:")


def clean(output: str) -> bool:
    return not any(text in output for text in LIBRARY_TEXT)


@pytest.fixture(scope="module")
def built(demo: Path, tmp_path_factory) -> Path:
    """A small build of the demo data (60 training images: 20 originals, 40 generated)."""
    out = tmp_path_factory.mktemp("first-hour") / "demo-60"
    run_cli("build", "--src", demo, "-o", out, "--total", "60", "-j", "1")
    return out


@pytest.fixture
def source(demo: Path, tmp_path: Path) -> Path:
    """A copy of the demo data, free to damage."""
    return Path(shutil.copytree(demo, tmp_path / "src"))


def released_sirst(demo: Path, root: Path) -> Path:
    """The demo data laid out as SIRST's authors release it: masks/<id>_pixels0.png, idx_427/trainval.txt."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "idx_427").mkdir()
    for part, name in (("train", "trainval.txt"), ("test", "test.txt")):
        part_ids = ids(demo, "50_50", part)
        (root / "idx_427" / name).write_text("\n".join(part_ids))
        for id_ in part_ids:
            shutil.copy(demo / "images" / f"{id_}.png", root / "images" / f"{id_}.png")
            shutil.copy(demo / "masks" / f"{id_}.png", root / "masks" / f"{id_}_pixels0.png")
    return root


# -- one line naming the right thing ------------------------------------------------------------

def test_a_corrupt_mask_is_named_as_not_a_readable_png(source, tmp_path):
    victim = ids(source, "50_50", "train")[1]
    mask = source / "masks" / f"{victim}.png"
    for junk in (b"not an image at all", b"", (source / "masks" / f"{ids(source, '50_50', 'train')[0]}.png").read_bytes()[:60]):
        mask.write_bytes(junk)
        res = run_cli("build", "--src", source, "-o", tmp_path / "out", expect=1)
        first = res.output.splitlines()[0]
        assert first.startswith(f"error: train id '{victim}': mask {mask}: cannot decode: not a readable PNG ("), first
        assert clean(res.output) and not (tmp_path / "out").exists()
    res = run_cli("info", source, "-j", "1")
    assert f"{mask}: cannot decode: not a readable PNG" in res.output and clean(res.output)


def test_ctrl_c_hints_at_resume_only_where_a_run_can_be_resumed(source, tmp_path, monkeypatch):
    from sirst_synth.run.stages.build import Build

    def interrupted(self, ds, out, opts):
        raise KeyboardInterrupt

    monkeypatch.setattr(Build, "run", interrupted)
    out = tmp_path / "out"
    res = run_cli("build", "--src", source, "-o", out, expect=130)
    assert res.output == "error: interrupted\n"                # nothing started: nothing to resume
    state_dir(out).mkdir(parents=True)                        # an interrupted build lies there
    res = run_cli("build", "--src", source, "-o", out, "--resume", expect=130)
    assert res.output == "error: interrupted; nothing is marked complete (finish with --resume)\n"


def _sigint_in_worker(job: int) -> tuple[bool, bool]:
    """(SIGINT blocked, SIGINT ignored) in the worker that runs ``job``."""
    return signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []), signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_a_run_stopped_early_says_nothing_of_joblib_and_its_workers_leave_ctrl_c_to_it():
    from sirst_synth.run.parallel import run_jobs

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as a command starts (whatever ran before)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results = run_jobs(_sigint_in_worker, list(range(16)), 2, "jobs", silent)
            first = next(results)
            results.close()                                   # as an error or Ctrl-C in the consumer does
        assert not [str(w.message) for w in caught]
        assert any(first)                                     # a Ctrl-C reaches the workers in vain
        assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_dataset_as_released_points_to_import(demo, tmp_path):
    release = released_sirst(demo, tmp_path / "SIRST")
    want = (f"error: {release}: a benchmark as its authors release it (masks named <id>_pixels0.png), not the "
            f"DNANet layout; convert it once with 'sirst-synth import sirst {release} -o OUT' and use OUT")
    for extra in ((), ("--split", "idx_427", "--train-list", "trainval.txt", "--skip-invalid")):
        res = run_cli("build", "--src", release, "-o", tmp_path / "out", *extra, expect=1)
        assert res.output.splitlines() == [want]
    res = run_cli("info", release, "--split", "idx_427", "--train-list", "trainval.txt", expect=1)
    assert res.output.splitlines() == [want]
    run_cli("import", "sirst", release, "-o", tmp_path / "imported")  # which works
    run_cli("build", "--src", tmp_path / "imported", "--split", "idx_427", "-o", tmp_path / "out", "--total", "30", "-j", "1")


def test_the_authors_sirst_release_points_to_import(tmp_path):
    release = DATASETS / "SIRST-release"
    if not release.is_dir():
        pytest.skip(f"{release} not found")
    for extra in ((), ("--split", "idx_427", "--train-list", "trainval.txt", "--skip-invalid")):
        lines = run_cli("build", "--src", release, "-o", tmp_path / "out", *extra, expect=1).output.splitlines()
        assert len(lines) == 1 and f"'sirst-synth import sirst {release} -o OUT'" in lines[0]


def test_skip_invalid_says_which_split_lost_which_ids(source, tmp_path):
    test_ids = ids(source, "50_50", "test")
    victim = test_ids[3]
    (source / "images" / f"{victim}.png").write_bytes(b"junk")
    out = tmp_path / "out"
    res = run_cli("build", "--src", source, "-o", out, "--total", "30", "-j", "1", "--skip-invalid")
    assert (f"warning: --skip-invalid left out 1 of {len(test_ids)} test ids ({victim}); the reasons are in "
            "sirst-synth.json (source.skipped_invalid)") in res.stderr.splitlines()
    assert f"{len(test_ids) - 1} test images, 1 skipped (1 test) -> {out}" in res.stdout
    assert ids(out, "50_50", "test") == [i for i in test_ids if i != victim]
    skipped = json.loads((out / "sirst-synth.json").read_text())["source"]["skipped_invalid"]
    assert [(s["id"], s["split"]) for s in skipped] == [(victim, "test")]


def test_range_errors_exit_1_with_one_line_in_every_command(demo, tmp_path):
    cases = [
        (("build", "--src", demo, "--alpha", "2"), "--alpha must be in [0, 1], got 2"),
        (("displace", "--src", demo, "--noise", __file__, "--alpha", "-0.5", "-o", tmp_path / "d"),
         "--alpha must be in [0, 1], got -0.5"),
        (("build", "--src", demo, "--s", "4"), "--s must be odd and >= 1, got 4"),
        (("train", "--data", demo, "--steps", "0", "-o", tmp_path / "r"), "--steps must be >= 1, got 0"),
        (("train", "--data", demo, "--lr", "0", "-o", tmp_path / "r"), "--lr must be > 0, got 0"),
        (("train", "--data", demo, "--seed", "-1", "-o", tmp_path / "r"), "--seed must be >= 0, got -1"),
        (("train", "--data", demo, "--crop", "40", "-o", tmp_path / "r"), "--crop must be a positive multiple of 16, got 40"),
        (("eval", "--pred", tmp_path, "--data", demo, "--batch-size", "0"), "--batch-size must be >= 1, got 0"),
        (("compare", "--arm", f"a={demo}", "--test", demo, "--steps", "0", "-o", tmp_path / "c"),
         "--steps must be >= 1, got 0"),
        (("preview", demo, "--size", "100", "-o", tmp_path / "p.png"), "--size must be 0 (no limit) or >= 320, got 100"),
    ]
    for args, message in cases:
        res = run_cli(*args, expect=1)
        assert res.output.splitlines() == [f"error: {message}"], args
    assert not (tmp_path / "r").exists()


# -- verdicts and summary lines ------------------------------------------------------------------

def test_verify_strict_reads_as_one_verdict(built, tmp_path):
    copy = Path(shutil.copytree(built, tmp_path / "copy"))
    (copy / "value_result").mkdir()
    (copy / "value_result" / "log.txt").write_text("DNANet was here")
    foreign = f"{copy}/value_result/: foreign folder (1 file not written by sirst-synth)"
    res = run_cli("verify", copy, "-j", "1")
    assert res.stdout.splitlines() == [foreign]
    assert re.fullmatch(rf"verify: {re.escape(str(copy))} intact: \d+ images, \d+ files, hashes equal, in \d+\.\d s; "
                        r"1 foreign entry not checked \(--strict fails on it\)\n", res.stderr)
    res = run_cli("verify", copy, "-j", "1", "--strict", expect=1)
    assert res.stdout.splitlines() == [foreign]
    verdict = res.stderr.strip()
    assert verdict.startswith(f"verify: {copy} fails --strict: 1 foreign entry (its own ") and "intact" not in verdict
    assert re.search(r", in \d+\.\d s$", verdict)
    (copy / "manifest.csv").write_text((copy / "manifest.csv").read_text().replace(",original,", ",displaced,", 1))
    res = run_cli("verify", copy, "-j", "1", "--strict", expect=1)
    assert re.search(r"fails: \d+ problems? and 1 foreign entry \(--strict\), in \d+\.\d s$", res.stderr.strip())


SUMMARY = re.compile(r"^(import sirst|verify|info|preview|preview-noise): .* in \d+\.\d s\b")


def test_import_verify_info_and_previews_end_with_seconds_on_stderr(built, demo, tmp_path):
    release = released_sirst(demo, tmp_path / "SIRST")
    bank = tmp_path / "noise.h5"
    run_cli("sample-noise", "--src", demo, "-o", bank, "-j", "1")
    commands = [("import", "sirst", release, "-o", tmp_path / "imported"), ("verify", built, "-j", "1"),
                ("info", built, "-j", "1"), ("info", built, "--json", "-j", "1"),
                ("preview", built, "-n", "2", "-o", tmp_path / "sheet.png"),
                ("preview-noise", bank, "-n", "4", "-o", tmp_path / "noise.png")]
    for args in commands:
        res = run_cli(*args)
        assert SUMMARY.match(res.stderr.splitlines()[-1]), (args, res.stderr)
        assert not SUMMARY.match(res.stdout.splitlines()[-1] if res.stdout else ""), args
    json.loads(run_cli("info", built, "--json", "-j", "1").stdout)   # stdout stays one JSON object
    for args in commands[1:3]:
        assert run_cli("-q", *args).stderr == ""


# -- the preview sheet ---------------------------------------------------------------------------

def test_the_preview_sheet_fits_a_screen_unless_told_otherwise(built, tmp_path):
    from support import read

    run_cli("preview", built, "-n", "8", "-o", tmp_path / "a.png")
    run_cli("preview", built, "-n", "8", "--size", "0", "-o", tmp_path / "b.png")
    run_cli("preview", built, "-n", "8", "--size", "400", "-o", tmp_path / "c.png")
    a, b, c = (read(tmp_path / f"{n}.png").shape[1] for n in "abc")
    assert b > 1600 >= a and c <= 400


def test_a_row_without_negatives_says_why(built, monkeypatch):
    from sirst_synth.inspect import preview
    from sirst_synth.method.targets import find_targets
    from sirst_synth.store.reader import open_dataset

    target = np.zeros((32, 32), np.uint8)
    target[10:13, 10:13] = 255                                 # a saturated 3x3 target: its window is symmetric
    skewed = target.copy()
    skewed[10, 10] = 0
    assert "rotation-symmetric" in " ".join(preview.no_negatives_reason(target, target, find_targets(target), 3))
    assert "no target" in " ".join(preview.no_negatives_reason(target, np.zeros_like(target), [], 3))
    assert "--total" in " ".join(preview.no_negatives_reason(skewed, skewed, find_targets(skewed), 3))

    ds = open_dataset(built)
    rows = ds.manifest()
    [row] = preview.choose_rows(rows, [next(i for i, r in rows.items() if r["kind"] == "displaced")])
    assert row.displaced is not None
    image, mask = ds.read_image(row.displaced), ds.read_mask(row.displaced)
    why = preview.no_negatives_reason(image, mask, find_targets(mask), 3)
    written: list[str] = []
    monkeypatch.setattr(preview, "put_text", lambda canvas, text, *args, **kw: written.append(text))
    preview.preview_sheet(ds, [preview.PreviewRow(row.source_id, row.original, row.displaced, [])])
    assert why[0].startswith("no negatives") and set(why) <= set(written)


# -- help a person can scan ----------------------------------------------------------------------

def test_help_is_grouped_described_and_shows_an_example_for_every_command():
    top = run_cli("--help").output
    for name, command in main.commands.items():
        short = command.get_short_help_str()
        assert 0 < len(short) <= 45 and not short.endswith("..."), name
        assert re.search(rf"^  {re.escape(name)} +{re.escape(short)}$", top, re.M), name
        text = run_cli(name, "--help").output
        assert re.search(rf"^  Example:\n +sirst-synth {re.escape(name)} ", text, re.M), name
        options = [p for p in command.params if isinstance(p, click.Option) and p.name != "help"]
        grouped = {n for names in command.sections.values() for n in names}
        assert [p.name for p in options if p.name not in grouped] == [], name
        assert [p.name for p in options if not p.help] == [], name
        assert "Options:" not in text and re.search(r"\n\nOther options:\n  -h, --help +Show this message and exit\.$",
                                                    text.rstrip()), name
        for title in command.sections:
            assert f"\n{title}:\n" in text, (name, title)
    assert "--resume" not in run_cli("sample-noise", "--help").output
    assert "No such option '--resume'" in run_cli("sample-noise", "--src", "x", "-o", "y.h5", "--resume", expect=2).output
