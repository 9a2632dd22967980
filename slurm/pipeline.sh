#!/usr/bin/env bash
# The whole experiment with plain sbatch and afterok chains (for sites without submitit;
# `apps-hpc submit pipeline` does the same): prepare -> train -> sample -> eval for the
# fine-tuned model, sample -> eval for the base model in parallel with training, then the
# report comparing both.
#   slurm/pipeline.sh EXPERIMENT.yaml [extra sbatch options, e.g. -p gpu -A myproj]
# The extra sbatch options go to every job and win over the .sbatch files' site-sized
# #SBATCH lines: size the jobs there. On the 4-CPU test cluster (slurm/local-cluster.sh):
#   GPUS_PER_NODE=0 SAMPLE_ENGINE=transformers SAMPLE_SHARDS=2 EVAL_SHARDS=2 \
#     SAMPLE_ARGS="--n 10 --max-tokens 32" slurm/pipeline.sh EXPERIMENT.yaml --cpus-per-task=2
# with a CPU experiment, e.g. configs/experiments/demo.yaml with an absolute root and model
# (see docs/dev/local-slurm.md).
# Environment: SAMPLE_SHARDS (8), EVAL_SHARDS (as many as SAMPLE_SHARDS: eval streams behind
# sampling, task by task; another number waits for the whole sampling array), GPUS_PER_NODE (8; 0 = CPU only, e.g. the
# test cluster), SAMPLE_ENGINE (vllm), SAMPLE_ARGS (more `apps-hpc sample` options, e.g.
# "--n 10 --max-tokens 2048"), REPORT_K (1,5,10), APPS_HPC (the apps-hpc command, e.g.
# inside the container).
set -euo pipefail
config=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
read -r -a cmd <<< "${APPS_HPC:-apps-hpc}"
shards=${SAMPLE_SHARDS:-8} eval_shards=${EVAL_SHARDS:-${SAMPLE_SHARDS:-8}} gpus=${GPUS_PER_NODE:-8}
engine=${SAMPLE_ENGINE:-vllm} report_k=${REPORT_K:-1,5,10}
read -r -a sample_args <<< "${SAMPLE_ARGS:-}"
train_gpus=() sample_gpus=()
if [ "$gpus" -gt 0 ]; then train_gpus=(--gres="gpu:$gpus"); sample_gpus=(--gres=gpu:1); fi
# Where the experiment lives, and the base model, from the config itself.
exp_dir=$("${cmd[@]}" experiment-path --config "$config")
base_model=$("${cmd[@]}" experiment-path --config "$config" --key model)
apps=$("${cmd[@]}" experiment-path --config "$config" --key apps)
data=$exp_dir/data
jobs=$exp_dir/jobs
mkdir -p "$jobs"
submit() { sbatch --parsable "$@" | cut -d';' -f1; }
after() { printf -- '--dependency=afterok:%s --kill-on-invalid-dep=yes' "$1"; }
corr() { printf -- '--dependency=aftercorr:%s --kill-on-invalid-dep=yes' "$1"; }
# `apps-hpc status EXP_DIR` reads these: step, job id, log (the first task's, for arrays).
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$jobs/sbatch-jobs.tsv"; }
tasks() { seq -s, -f "${1}_%g" 0 $(($2 - 1)); }  # an array's task ids: 12_0,12_1,...

prepare=$(submit "$@" --output="$jobs/prepare-%j.out" --job-name=apps-hpc-prepare \
  --wrap "${cmd[*]} prepare --config $config")
record prepare "$prepare" "$jobs/prepare-$prepare.out"
# shellcheck disable=SC2046  # after() prints two options on purpose
train=$(submit "$@" $(after "$prepare") --output="$jobs/train-%j.out" "${train_gpus[@]}" \
  "$here/train.sbatch" "$config")
record train "$train" "$jobs/train-$train.out"
results=()
for model in base sft; do
  if [ "$model" = base ]; then src=$base_model; dep=$prepare; else src=$exp_dir/train; dep=$train; fi
  # shellcheck disable=SC2046
  sample=$(submit "$@" $(after "$dep") --array="0-$((shards - 1))" "${sample_gpus[@]}" \
    --output="$jobs/sample-$model-%A_%a.out" \
    "$here/sample.sbatch" "$src" "$data/prompts.jsonl" "$exp_dir/samples/$model" "$engine" \
    --model-name "$model" "${sample_args[@]}")
  record "sample/$model" "$(tasks "$sample" "$shards")" "$jobs/sample-$model-${sample}_0.out"
  # With as many eval tasks as sampling tasks, eval task i judges sample shard i as soon
  # as sampling task i ended (aftercorr); its last task merges the results. Otherwise
  # eval waits for all of sampling (whose last task merged the samples).
  eval_dep=$(after "$sample") stream=()
  if [ "$eval_shards" -eq "$shards" ] && [ "$shards" -gt 1 ]; then
    eval_dep=$(corr "$sample") stream=(--stream "$exp_dir/samples/$model")
  fi
  # shellcheck disable=SC2046,SC2086
  evaluate=$(submit "$@" $eval_dep --array="0-$((eval_shards - 1))" \
    --output="$jobs/eval-$model-%A_%a.out" \
    "$here/eval.sbatch" "$exp_dir/samples/$model.jsonl" "$apps" "$exp_dir/results/$model.jsonl" \
    "${stream[@]}")
  record "eval/$model" "$(tasks "$evaluate" "$eval_shards")" "$jobs/eval-$model-${evaluate}_0.out"
  results+=("$evaluate")
  echo "$model: sample $sample, eval $evaluate"
done
# shellcheck disable=SC2046
report=$(submit "$@" $(after "${results[0]}:${results[1]}") --job-name=apps-hpc-report \
  --output="$jobs/report-%j.out" \
  --wrap "${cmd[*]} report $exp_dir/results/base.jsonl $exp_dir/results/sft.jsonl --k $report_k --out $exp_dir/report")
record report "$report" "$jobs/report-$report.out"
echo "prepare $prepare, train $train, report $report"
