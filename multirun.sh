#!/usr/bin/env bash
# The full clustering study (section 3.1 of "Latent Space Shenanigans") as one command:
#   every model with a checkpoint x {kmeans, gmm} x {7, 10} clusters x seeds 0..SEEDS-1,
#   plus cluster_scores (silhouette / CH / DB over k) per model, then the seed-variance table.
#
#   bash multirun.sh dataset=gtzan dataset.root=PATH          # extra args = Hydra overrides
#   SEEDS=3 MODELS="fcn crnn" bash multirun.sh ...
#   bash multirun.sh ... hydra/launcher=joblib hydra.launcher.n_jobs=2   # parallel jobs
#
# Models without a checkpoint are skipped with one line (never run with random weights here).
# Each model's embeddings are extracted once (by its cluster_scores job, which runs first); the
# 20 clustering jobs reuse the cache. PYTHON selects the interpreter (default: python).
# Interrupted? Re-run with the sweep id it printed (SWEEP_ID=... bash multirun.sh <same args>):
# jobs that already FINISHED in that sweep are skipped.
#   bash multirun.sh SEEDS=3 MODELS="fcn crnn" dataset=gtzan ...   # the same settings as arguments
set -euo pipefail
cd "$(dirname "$0")"

# Settings may come as environment variables or as NAME=value arguments (a new user types them
# where the Hydra overrides go). Other upper-case NAME=value words are not Hydra overrides either:
# Hydra would answer with a long traceback suggesting "+NAME=..", which is the wrong fix.
overrides=()
for arg in "$@"; do
  case "$arg" in
    SEEDS=*|MODELS=*|SWEEP_ID=*|PYTHON=*) export "${arg%%=*}=${arg#*=}" ;;
    LAB_*=*|MLFLOW_TRACKING_URI=*) export "${arg%%=*}=${arg#*=}" ;;  # what the lab itself reads
    [A-Z]*=*)
      name=${arg%%=*}
      if [[ "$name" =~ ^[A-Z][A-Z0-9_]*$ ]]; then
        echo "multirun.sh: $name is not a setting of multirun.sh (SEEDS, MODELS, SWEEP_ID, PYTHON) nor a Hydra override (those are lower-case, e.g. seed=1); an environment variable goes before the command: $arg bash multirun.sh ..." >&2
        exit 2
      fi
      overrides+=("$arg") ;;
    *) overrides+=("$arg") ;;
  esac
done
set -- ${overrides[@]+"${overrides[@]}"}

PY=${PYTHON:-python}
SEEDS=${SEEDS:-5}
MODELS=${MODELS:-fcn musicnn crnn attention hcnn sample se}
SWEEP=${SWEEP_ID:-study-$(date +%Y%m%d-%H%M%S)}
if ! [[ "$SEEDS" =~ ^[1-9][0-9]*$ ]]; then
  echo "multirun.sh: SEEDS=$SEEDS must be a positive whole number of seeds, e.g. SEEDS=3 (runs seeds 0, 1, 2)" >&2
  exit 2
fi
for m in $MODELS; do
  case " fcn musicnn crnn attention hcnn sample se " in
    *" $m "*) ;;
    *) echo "multirun.sh: MODELS has an unknown model '$m'; choose from: fcn musicnn crnn attention hcnn sample se (space-separated, e.g. MODELS=\"fcn crnn\")" >&2
       exit 2 ;;
  esac
done
seeds=$(seq -s, 0 $((SEEDS - 1)))
echo "multirun.sh: sweep $SWEEP (resume after an interruption with SWEEP_ID=$SWEEP)"

available=" $($PY -m lab.models --available "$@") "
ran=0
for m in $MODELS; do
  if [[ "$available" != *" $m "* ]]; then
    echo "multirun.sh: skipping model=$m: no checkpoint (python -m lab.models shows where it is expected)"
    continue
  fi
  echo "multirun.sh: model=$m"
  $PY -m lab experiment=cluster_scores model="$m" sweep_id="$SWEEP" embed.progress=false "$@"
  $PY -m lab experiment=clustering model="$m" clusterer=kmeans,gmm cluster_count=seven,ten seed="$seeds" \
      sweep_id="$SWEEP" embed.progress=false "$@" -m
  ran=$((ran + 1))
done
if [[ $ran -eq 0 ]]; then
  echo "multirun.sh: no model has a checkpoint; set LAB_WEIGHTS_DIR or paths.weights=DIR" >&2
  exit 2
fi
$PY -m lab.report --sweep-id "$SWEEP" "$@"

# ---- The transforms study (section 3.2.1, Table 2), after the clustering study above ----------
# Every model with a checkpoint x {pitch, tempo} x 1.5 x six transforms, one MLflow run each; the
# shifted audio is made once (paths.derived) and embedded once per model (paths.cache).
# TRANSFORMS=0 skips it; its table: python -m lab.report --experiment transforms --sweep-id $SWEEP
if [[ "${TRANSFORMS:-1}" != 0 ]]; then
  tmodels=""
  for m in $MODELS; do
    if [[ "$available" == *" $m "* ]]; then tmodels="$tmodels,$m"; fi
  done
  echo "multirun.sh: transforms study, models ${tmodels#,}"
  $PY -m lab experiment=transforms model="${tmodels#,}" shift=pitch,tempo \
      transform=identity,translation,uniform_scaling,nonuniform_scaling,scaled_orthogonal,affine \
      sweep_id="$SWEEP" embed.progress=false "$@" -m
  $PY -m lab.report --experiment transforms --sweep-id "$SWEEP" "$@"
fi
