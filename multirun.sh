#!/usr/bin/env bash
# The study as one command: the clustering study (section 3.1 of "Latent Space Shenanigans") and the
# transforms study (Table 2) by default; with BUDGET=quick or BUDGET=full every part of the paper,
# then the whole-study document (python -m lab.report --paper: reports/<sweep>/paper.html).
#
#   bash multirun.sh dataset=gtzan dataset.root=PATH          # extra args = Hydra overrides
#   bash multirun.sh BUDGET=quick dataset=gtzan dataset.root=../shared/music/gtzan_mini   # the paper, in minutes
#   BUDGET=full OOD="carnatic=/data/carnatic gaana=/data/gaana" bash multirun.sh ...      # the paper's protocol
#   SEEDS=3 MODELS="fcn crnn" bash multirun.sh ...
#   JOBS=1 bash multirun.sh ...        # one job at a time (default: one per CPU core)
#
# Budgets (BUDGET=standard is the default):
#   standard  every model with a checkpoint, and the baselines (handcrafted features, random-weights
#             FCN; BASELINES=0 leaves them out), x {kmeans, gmm} x {7, 10} clusters x seeds 0..SEEDS-1
#             (SEEDS=5), cluster_scores per model, Table 1, then the transforms study (Table 2)
#   quick     the same with SEEDS=2, plus FCN from the other training corpora, one 200-step dream
#             (disco) per model, out-of-domain sets (OOD=...), CKA, probe
#   full      the paper's protocol: SEEDS=10, every genre dreamed for 10 000 steps, the rest as quick
# Models without a checkpoint are skipped with one line (never run with random weights by accident).
# Clustering jobs run on the embeddings cluster_scores cached, JOBS at a time (joblib workers; a
# hydra/launcher=... argument replaces that launcher). PYTHON selects the interpreter (default: python).
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
    SEEDS=*|MODELS=*|SWEEP_ID=*|PYTHON=*|JOBS=*|TRANSFORMS=*|BUDGET=*|OOD=*|BASELINES=*) export "${arg%%=*}=${arg#*=}" ;;
    LAB_*=*|MLFLOW_TRACKING_URI=*) export "${arg%%=*}=${arg#*=}" ;;  # what the lab itself reads
    [A-Z]*=*)
      name=${arg%%=*}
      if [[ "$name" =~ ^[A-Z][A-Z0-9_]*$ ]]; then
        echo "multirun.sh: $name is not a setting of multirun.sh (BUDGET, SEEDS, MODELS, JOBS, SWEEP_ID, TRANSFORMS, BASELINES, OOD, PYTHON) nor a Hydra override (those are lower-case, e.g. seed=1); an environment variable goes before the command: $arg bash multirun.sh ..." >&2
        exit 2
      fi
      overrides+=("$arg") ;;
    *) overrides+=("$arg") ;;
  esac
done
set -- ${overrides[@]+"${overrides[@]}"}

PY=${PYTHON:-python}
BUDGET=${BUDGET:-standard}
case "$BUDGET" in
  standard) SEEDS=${SEEDS:-5} ;;
  quick)    SEEDS=${SEEDS:-2}; DREAM=(genre=disco dream.steps=200 dream.log_every=20 dream.checkpoint_every=0)
            SIM=(experiment.n_boot=200 experiment.n_perm=50) ;;
  full)     SEEDS=${SEEDS:-10}; DREAM=(genre=all dream.steps=10000); SIM=() ;;
  *) echo "multirun.sh: BUDGET=$BUDGET must be standard, quick or full (quick: the whole paper in minutes; full: its protocol)" >&2
     exit 2 ;;
esac
MODELS=${MODELS:-fcn musicnn crnn attention hcnn sample se}
SWEEP=${SWEEP_ID:-study-$(date +%Y%m%d-%H%M%S)}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 1)}
if ! [[ "$JOBS" =~ ^[1-9][0-9]*$ ]]; then
  echo "multirun.sh: JOBS=$JOBS must be a positive whole number of parallel clustering jobs, e.g. JOBS=2 (JOBS=1: one at a time)" >&2
  exit 2
fi
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
ood=()
for pair in ${OOD:-}; do
  if ! [[ "$pair" =~ ^[A-Za-z][A-Za-z0-9_-]*=.+$ ]]; then
    echo "multirun.sh: OOD has '$pair'; write each out-of-domain set as name=folder, e.g. OOD=\"carnatic=../shared/music/carnatic\"" >&2
    exit 2
  fi
  ood+=("+ood.${pair%%=*}=${pair#*=}")
done
seeds=$(seq -s, 0 $((SEEDS - 1)))
echo "multirun.sh: sweep $SWEEP, budget $BUDGET (resume after an interruption with SWEEP_ID=$SWEEP)"

available=" $($PY -m lab.models --available "$@") "
models=""
for m in $MODELS; do
  if [[ "$available" != *" $m "* ]]; then
    echo "multirun.sh: skipping model=$m: no checkpoint (python -m lab.models shows where it is expected)"
    continue
  fi
  models="$models,$m"
done
models=${models#,}
if [[ -z "$models" ]]; then
  echo "multirun.sh: no model has a checkpoint; set LAB_WEIGHTS_DIR or paths.weights=DIR" >&2
  exit 2
fi
# Parallel clustering jobs unless the caller chose a launcher (e.g. hydra/launcher=submitit_slurm).
launcher=()
if [[ "$JOBS" -gt 1 && " $* " != *" hydra/launcher="* ]]; then
  launcher=(hydra/launcher=joblib "hydra.launcher.n_jobs=$JOBS")
fi
# Baselines beside the taggers in every table (BASELINES=0 leaves them out): the classic GTZAN
# features (model=handcrafted) go through the same sweeps; the random-weights FCN, what the
# architecture gives without training, is a sweep of its own (model.pretrained=false).
base=""
[[ "${BASELINES:-1}" != 0 ]] && base=",handcrafted"
njobs=$(( ($(tr -cd , <<<"$models$base" | wc -c) + 1) * 4 * SEEDS ))
echo "multirun.sh: models $models${base}; cluster_scores (extracts each model's embeddings once)"
$PY -m lab experiment=cluster_scores model="$models$base" sweep_id="$SWEEP" "$@" -m
echo "multirun.sh: $njobs clustering jobs, $JOBS at a time, on the cached embeddings"
# experiment.listen_map=0: the listening page (3 MB, ~0.3 s) for the seed-0 run of each cell only
$PY -m lab experiment=clustering model="$models$base" clusterer=kmeans,gmm cluster_count=seven,ten seed="$seeds" \
    experiment.listen_map=0 sweep_id="$SWEEP" embed.progress=false ${launcher[@]+"${launcher[@]}"} "$@" -m
if [[ -n "$base" ]]; then
  echo "multirun.sh: baseline: random-weights fcn"
  $PY -m lab experiment=clustering model=fcn model.pretrained=false clusterer=kmeans,gmm cluster_count=seven,ten seed="$seeds" \
      experiment.listen_map=false sweep_id="$SWEEP" embed.progress=false ${launcher[@]+"${launcher[@]}"} "$@" -m
fi
# FCN trained on MagnaTagATune and the Million Song Dataset (quick, full): what the corpus changes.
if [[ "$BUDGET" != standard && ",$models," == *",fcn,"* ]]; then
  echo "multirun.sh: fcn from the other training corpora"
  $PY -m lab experiment=clustering model=fcn model.corpus=mtat,msd clusterer=kmeans cluster_count=ten seed="$seeds" \
      experiment.listen_map=false sweep_id="$SWEEP" embed.progress=false ${launcher[@]+"${launcher[@]}"} "$@" -m
fi
$PY -m lab.report --sweep-id "$SWEEP" "$@"

# ---- The transforms study (section 3.2.1, Table 2), after the clustering study above ----------
# Every model with a checkpoint x {pitch, tempo} x 1.5 x six transforms, one MLflow run each; the
# shifted audio is made once (paths.derived) and embedded once per model (paths.cache).
# TRANSFORMS=0 skips it; its table: python -m lab.report --experiment transforms --sweep-id $SWEEP
if [[ "${TRANSFORMS:-1}" != 0 ]]; then
  echo "multirun.sh: transforms study, models $models"
  $PY -m lab experiment=transforms model="$models" shift=pitch,tempo \
      transform=identity,translation,uniform_scaling,nonuniform_scaling,scaled_orthogonal,affine \
      sweep_id="$SWEEP" embed.progress=false "$@" -m
  $PY -m lab.report --experiment transforms --sweep-id "$SWEEP" "$@"
fi

# ---- The rest of the paper (quick, full): dream, out of domain, similarity, probe -------------------
if [[ "$BUDGET" != standard ]]; then
  echo "multirun.sh: dreams (${DREAM[*]}), models $models"
  $PY -m lab experiment=dream model="$models" "${DREAM[@]}" dream.progress=false sweep_id="$SWEEP" embed.progress=false "$@" -m
  if [[ ${#ood[@]} -gt 0 ]]; then
    echo "multirun.sh: out of domain (${OOD}), models $models"
    $PY -m lab experiment=out_of_domain model="$models" "${ood[@]}" sweep_id="$SWEEP" embed.progress=false "$@" -m
  else
    echo "multirun.sh: no out-of-domain sets (OOD=\"name=folder ...\"); Figure 5 stays empty"
  fi
  sim="[${models}${base}]"
  [[ ",$models," == *",fcn,"* ]] && sim="[${models}${base},fcn@mtat,fcn@msd]"
  echo "multirun.sh: similarity between $sim"
  $PY -m lab experiment=similarity "experiment.models=$sim" ${SIM[@]+"${SIM[@]}"} sweep_id="$SWEEP" embed.progress=false "$@"
  echo "multirun.sh: linear probe, models $models"
  $PY -m lab experiment=probe model="$models$base" sweep_id="$SWEEP" embed.progress=false "$@" -m
fi

# ---- The whole study as one document ------------------------------------------------------------
$PY -m lab.report --paper --sweep-id "$SWEEP" "$@"
