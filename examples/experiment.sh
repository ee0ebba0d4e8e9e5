#!/usr/bin/env bash
# The paper's claim, as an experiment: the same model, trained for the same number of optimiser
# steps on NUDT-SIRST (train split) and on the SIRST-5K built from it, both scored on
# NUDT-SIRST's test split. Writes $OUT/table.md (mIoU, nIoU, Pd, Fa per training set).
#
#   NUDT=/path/to/NUDT-SIRST bash examples/experiment.sh                 # paper scale (GPU)
#   WIDTH=8 CROP=128 BATCH=8 EPOCHS=8 STEPS_PER_EPOCH=50 bash examples/experiment.sh   # CPU check
#
# Defaults are the paper's: width 32 (8.69 M parameters), batch 256, 256x256 crops, 1500 epochs
# of 3 steps (one pass over NUDT-SIRST's 663 train images at batch 256), lr 0.05. Every setting
# is an environment variable; a second run resumes unfinished trainings and skips done steps.
set -euo pipefail

NUDT=${NUDT:-../shared/datasets/NUDT-SIRST}
OUT=${OUT:-runs/experiment}
SIRST_SYNTH=${SIRST_SYNTH:-sirst-synth}
WIDTH=${WIDTH:-32}
CROP=${CROP:-256}
BATCH=${BATCH:-256}
EPOCHS=${EPOCHS:-1500}
STEPS_PER_EPOCH=${STEPS_PER_EPOCH:-3}
EVAL_EVERY=${EVAL_EVERY:-$EPOCHS}
LR=${LR:-0.05}
SEED=${SEED:-0}
DEVICE=${DEVICE:-auto}
JOBS=${JOBS:--1}

mkdir -p "$OUT"
if [ ! -f "$OUT/SIRST-5K/sirst-synth.json" ]; then
    echo "== build SIRST-5K from $NUDT"
    # an interrupted build (no sirst-synth.json yet) is started again
    force=(); [ -d "$OUT/SIRST-5K" ] && force=(--force)
    "$SIRST_SYNTH" build --src "$NUDT" --alpha 0.1 --s 3 -o "$OUT/SIRST-5K" -j "$JOBS" "${force[@]}"
fi

for name in NUDT-SIRST SIRST-5K; do
    if [ "$name" = NUDT-SIRST ]; then data=$NUDT; else data=$OUT/SIRST-5K; fi
    run=$OUT/run-$name
    echo "== train on $name"
    resume=(); [ -f "$run/last.pt" ] && resume=(--resume)
    "$SIRST_SYNTH" train --data "$data" --eval-data "$NUDT" --width "$WIDTH" --crop "$CROP" \
        --batch-size "$BATCH" --epochs "$EPOCHS" --steps-per-epoch "$STEPS_PER_EPOCH" --lr "$LR" \
        --seed "$SEED" --device "$DEVICE" --eval-every "$EVAL_EVERY" -o "$run" "${resume[@]}"
    echo "== score $name's last.pt on NUDT-SIRST test"
    "$SIRST_SYNTH" eval --checkpoint "$run/last.pt" --data "$NUDT" --device "$DEVICE" --json > "$run/eval.json"
done

python3 - "$OUT" <<'PY'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
lines = ["| training data | train images | steps | mIoU | nIoU | Pd | Fa (x1e6) | train+eval s |",
         "|---|---:|---:|---:|---:|---:|---:|---:|"]
for name in ("NUDT-SIRST", "SIRST-5K"):
    run = out / f"run-{name}"
    scores = json.loads((run / "eval.json").read_text())
    summary = json.loads((run / "metrics.json").read_text())
    data = Path(summary["config"]["data"])
    n_train = sum(1 for line in (data / summary["config"]["split"] / "train.txt").read_text().splitlines() if line.strip())
    cells = [f"{scores[k]:.2f}" if scores[k] is not None else "n/a" for k in ("mIoU", "nIoU", "Pd", "Fa")]
    lines.append(f"| {name} | {n_train} | {summary['steps']} | " + " | ".join(cells) + f" | {summary['seconds']:.0f} |")
table = "\n".join(lines) + "\n"
(out / "table.md").write_text(table)
print(table, end="")
PY
