#!/usr/bin/env bash
# The paper's claim, as an experiment: the same model, trained for the same number of optimiser
# steps of the same number of images on NUDT-SIRST (train split) and on the SIRST-5K built from
# it, both scored on NUDT-SIRST's test split. Writes $OUT/table.md and $OUT/table.json.
#
#   NUDT=/path/to/NUDT-SIRST bash examples/experiment.sh          # H100 preset (see below)
#   NUDT=... BUDGET_MIN=9.5 bash examples/experiment.sh           # the same in commands of <= 9.5 min:
#                                                                 # run it again until it writes the table
#   WIDTH=8 CROP=128 BATCH=8 STEPS=400 DEVICE=cpu bash examples/experiment.sh   # a CPU check
#
# Preset (the defaults): width 32 (8.69 M parameters), batch 256, 256 x 256 crops, lr 0.05, and
# STEPS=auto: a 30-step (TIMING_STEPS) timing run on SIRST-5K picks the largest multiple of STEP_MULTIPLE steps
# that keeps each training run under RUN_MINUTES (7) on this machine, loading, compilation and
# final scoring included; the choice is kept in $OUT/steps.json, so a rerun uses the same. 7
# minutes leave room for the build and the timing run in the first of two 10-minute commands. Both runs then train
# for STEPS steps of exactly BATCH images (every batch is full) with the same seed and schedule.
#
# Resumable: SIRST-5K is built once ($OUT/SIRST-5K; set SIRST5K to reuse a build), a finished run
# is skipped, an unfinished one continues from its last.pt (written every SAVE_EVERY_MIN minutes
# and when the command is stopped by SIGTERM or SIGINT). With BUDGET_MIN, each training stops
# cleanly (--stop-after-min) before the command has run BUDGET_MIN minutes; run the same
# command again to continue. ONLY=NUDT-SIRST or ONLY=SIRST-5K trains only that run this time.
set -euo pipefail

NUDT=${NUDT:-../shared/datasets/NUDT-SIRST}
OUT=${OUT:-runs/experiment}
SIRST_SYNTH=${SIRST_SYNTH:-sirst-synth}   # the command, e.g. "python -m sirst_synth"
PYTHON=${PYTHON:-python3}
SIRST5K=${SIRST5K:-$OUT/SIRST-5K}
BUILD_ARGS=${BUILD_ARGS:-}
WIDTH=${WIDTH:-32}
CROP=${CROP:-256}
BATCH=${BATCH:-256}
STEPS=${STEPS:-auto}
RUN_MINUTES=${RUN_MINUTES:-7}
STEP_MULTIPLE=${STEP_MULTIPLE:-50}
TIMING_STEPS=${TIMING_STEPS:-30}
EVAL_RESERVE_S=${EVAL_RESERVE_S:-45}      # auto: time kept for start-up and scoring 664 test images
LR=${LR:-0.05}
SEED=${SEED:-0}
DEVICE=${DEVICE:-auto}
JOBS=${JOBS:--1}
LOG_EVERY=${LOG_EVERY:-50}
SAVE_EVERY_MIN=${SAVE_EVERY_MIN:-2}
BUDGET_MIN=${BUDGET_MIN:-}
BUDGET_MARGIN_MIN=${BUDGET_MARGIN_MIN:-1}  # kept for scoring and saving after a training stops
ONLY=${ONLY:-}

read -r -a CLI <<< "$SIRST_SYNTH"
START=$(date +%s)
mkdir -p "$OUT"

left_min() {  # minutes this command may still train, "" without a budget
    [ -n "$BUDGET_MIN" ] || return 0
    "$PYTHON" -c "import sys; print(max(0.0, $BUDGET_MIN - $BUDGET_MARGIN_MIN - ($(date +%s) - $START) / 60))"
}

stop_args() {  # --stop-after-min for the next training, when there is a budget
    local left; left=$(left_min)
    [ -z "$left" ] || echo "--stop-after-min $left"
}

is_done() {  # the run folder holds a finished run
    [ -f "$1/metrics.json" ] && "$PYTHON" -c "import json, sys; sys.exit(0 if json.load(open('$1/metrics.json'))['done'] else 1)"
}

if [ ! -f "$SIRST5K/sirst-synth.json" ] && [ ! -f "$SIRST5K" ]; then
    echo "== build SIRST-5K from $NUDT"
    # an interrupted build (no sirst-synth.json yet) is started again
    force=(); [ -d "$SIRST5K" ] && force=(--force)
    # shellcheck disable=SC2086
    "${CLI[@]}" build --src "$NUDT" --alpha 0.1 --s 3 -o "$SIRST5K" -j "$JOBS" "${force[@]}" $BUILD_ARGS
fi

common=(--width "$WIDTH" --crop "$CROP" --batch-size "$BATCH" --lr "$LR" --seed "$SEED" --device "$DEVICE"
        --log-every "$LOG_EVERY" --save-every-min "$SAVE_EVERY_MIN")

if [ "$STEPS" = auto ]; then
    if [ ! -f "$OUT/steps.json" ]; then
        timing=$OUT/timing
        if ! is_done "$timing"; then
            echo "== $TIMING_STEPS-step timing run on SIRST-5K"
            rm -rf "$timing"
            "${CLI[@]}" train --data "$SIRST5K" --eval-data "$NUDT" "${common[@]}" --steps "$TIMING_STEPS" --eval-images 1 \
                -o "$timing"
        fi
        "$PYTHON" - "$timing/metrics.json" "$RUN_MINUTES" "$STEP_MULTIPLE" "$EVAL_RESERVE_S" "$OUT/steps.json" <<'PY'
import json, math, sys

summary = json.load(open(sys.argv[1]))
run_s, multiple, reserve = float(sys.argv[2]) * 60, int(sys.argv[3]), float(sys.argv[4])
per_step = summary["seconds_per_step"]  # after the warm-up steps (cuDNN tuning, compilation)
warmup = summary["seconds"] - per_step * (summary["steps"] - summary["warmup_steps"])  # beyond their share
fixed = round(summary["load_seconds"] + warmup + reserve, 3)
steps = max(multiple, int((run_s - fixed) / per_step) // multiple * multiple)
choice = {"steps": steps, "seconds_per_step": per_step, "fixed_seconds": fixed,
          "projected_run_minutes": round((fixed + steps * per_step) / 60, 2), "run_seconds": run_s,
          "device": summary["device_name"], "precision": summary["precision"]}
json.dump(choice, open(sys.argv[5], "w"), indent=2)
print(f"== {per_step:.3f} s/step on {choice['device']} ({choice['precision']}): {steps} steps per run, "
      f"about {choice['projected_run_minutes']} min each")
PY
    fi
    STEPS=$("$PYTHON" -c "import json; print(json.load(open('$OUT/steps.json'))['steps'])")
fi

for name in NUDT-SIRST SIRST-5K; do
    if [ -n "$ONLY" ] && [ "$ONLY" != "$name" ]; then continue; fi
    if [ "$name" = NUDT-SIRST ]; then data=$NUDT; else data=$SIRST5K; fi
    run=$OUT/run-$name
    if is_done "$run"; then echo "== $name: done"; continue; fi
    echo "== train on $name: $STEPS steps of $BATCH images"
    # shellcheck disable=SC2046
    if [ -f "$run/last.pt" ]; then
        "${CLI[@]}" train --resume -o "$run" --device "$DEVICE" $(stop_args)
    else
        "${CLI[@]}" train --data "$data" --eval-data "$NUDT" "${common[@]}" --steps "$STEPS" -o "$run" $(stop_args)
    fi
    if ! is_done "$run"; then
        echo "== $name stopped before its last step (budget); run the same command again to continue"
        exit 0
    fi
done

for name in NUDT-SIRST SIRST-5K; do
    if ! is_done "$OUT/run-$name"; then
        echo "== run-$name is not finished yet: no table"
        exit 0
    fi
done

"$PYTHON" - "$OUT" <<'PY'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
lines = ["| training data | train images | steps | batch | seed | mIoU | nIoU | Pd | Fa (x1e6) | train min | device |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
rows = {}
for name in ("NUDT-SIRST", "SIRST-5K"):
    summary = json.loads((out / f"run-{name}" / "metrics.json").read_text())
    scores = summary["last"]
    rows[name] = {"train_images": summary["train_images"], "steps": summary["steps"],
                  "batch": summary["batch_size"], "seed": summary["config"]["seed"],
                  **{k: scores[k] for k in ("mIoU", "nIoU", "Pd", "Fa")},
                  "eval_images": summary["eval_images"], "train_minutes": round(summary["seconds"] / 60, 2),
                  "device": summary["device_name"], "precision": summary["precision"]}
    r = rows[name]
    cells = [f"{r[k]:.2f}" if r[k] is not None else "n/a" for k in ("mIoU", "nIoU", "Pd", "Fa")]
    lines.append(f"| {name} | {r['train_images']} | {r['steps']} | {r['batch']} | {r['seed']} | "
                 + " | ".join(cells) + f" | {r['train_minutes']:.1f} | {r['device']} |")
table = "\n".join(lines) + "\n"
(out / "table.md").write_text(table)
(out / "table.json").write_text(json.dumps(rows, indent=2) + "\n")
print(table, end="")
PY
