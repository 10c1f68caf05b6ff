#!/usr/bin/env bash
# `make leaderboard`: one submission per alignment method on the organism, validated, verified
# from its samples and rendered to leaderboard/site/. Every trained method gets the same base model,
# the organism's own preference pairs and the settings its data card names (those its DPO twin is
# built with), so the rows differ by method only. Each trained method is trained with several seeds
# (LEADERBOARD_SEEDS): the first seed's model gets every task, the others the elicitation task, and the
# row shows the spread over seeds beside the interval over prompts. Finished models and runs are reused
# when the script runs again (align skips a finished model, the runs' cache holds every generation and
# score).
#
# Environment: TOXBENCH (the CLI), LEADERBOARD_MODEL (default organism), LEADERBOARD_WORK (models
# and runs, default runs/leaderboard), LEADERBOARD_SUBMISSIONS (default leaderboard/submissions),
# LEADERBOARD_SITE (default leaderboard/site), LEADERBOARD_LIMIT (prompts per dataset, default all),
# LEADERBOARD_SEEDS (training seeds, default "0 1 2").
set -euo pipefail
cd "$(dirname "$0")/.."
TB=${TOXBENCH:-.venv/bin/toxbench}
MODEL=${LEADERBOARD_MODEL:-organism}
WORK=${LEADERBOARD_WORK:-runs/leaderboard}
SUBS=${LEADERBOARD_SUBMISSIONS:-leaderboard/submissions}
SITE=${LEADERBOARD_SITE:-leaderboard/site}
LIMIT=${LEADERBOARD_LIMIT:+--limit $LEADERBOARD_LIMIT}
read -r -a SEEDS <<< "${LEADERBOARD_SEEDS:-0 1 2}"
TRAINED=(dpo ipo kto sft)

align() {  # align METHOD FOLDER [ARGS...]: skipped when the model is already finished
  local method=$1 folder=$2; shift 2
  if [[ -f "$folder/method.json" ]]; then
    echo "leaderboard: $method already aligned ($folder)"
  else
    "$TB" align "$method" --model "$MODEL" --output-path "$folder" "$@"
  fi
}

model_dir() {  # model_dir METHOD SEED: the first seed's model is the method's own folder
  if [[ $2 == "${SEEDS[0]}" ]]; then echo "$WORK/models/$1"; else echo "$WORK/models/$1-seed$2"; fi
}

for method in "${TRAINED[@]}"; do
  for seed in "${SEEDS[@]}"; do
    align "$method" "$(model_dir "$method" "$seed")" --data organism --method-args "seed=$seed"
  done
done
align subtract "$WORK/models/subtract" --method-args "match=$WORK/models/dpo"
align ablate "$WORK/models/ablate"
align profs "$WORK/models/profs" --data organism

evaluate() {  # evaluate NAME ALIGNED [ARGS...]: a run of the base model and ALIGNED
  local name=$1 aligned=$2; shift 2
  "$TB" run --model "$MODEL" --aligned "$aligned" $LIMIT --output-path "$WORK/runs/$name" "$@"
}

submit() {  # submit NAME ALIGNED METHOD-DESCRIPTION [SEED-RUN-RESULTS...]
  local name=$1 aligned=$2 method=$3; shift 3
  local extra=()
  for results in "$@"; do extra+=(--seed-run "$results"); done
  evaluate "$name" "$aligned"
  rm -f "$SUBS/$name.json" "$SUBS/$name".samples.jsonl.gz "$SUBS/$name"-seed-run-*.samples.jsonl.gz
  "$TB" leaderboard submit "$WORK/runs/$name/results.json" --name "$name" --method "$method" \
      --output-path "$SUBS" "${extra[@]}"
}

submit_trained() {  # submit_trained METHOD DESCRIPTION: the first seed with every task, the rest beside it
  local method=$1 description=$2 seed_runs=()
  for seed in "${SEEDS[@]:1}"; do
    evaluate "$MODEL-$method-seed$seed" "$(model_dir "$method" "$seed")" --tasks elicitation
    seed_runs+=("$WORK/runs/$MODEL-$method-seed$seed/results.json")
  done
  submit "$MODEL-$method" "$WORK/models/$method" "$description" "${seed_runs[@]}"
}

mkdir -p "$SUBS"
submit "$MODEL-no-op" "$MODEL" "none: the base model itself (the no-op row)"
submit "$MODEL-dpo-twin" "$MODEL:dpo" "DPO (TRL), the organism's built twin (TRL's own tokenisation)"
submit_trained dpo "toxbench align dpo: DPO (TRL), [A]'s tokenisation, the card's settings"
submit_trained ipo "toxbench align ipo: IPO loss (TRL DPO trainer), the card's settings"
submit_trained kto "toxbench align kto: KTO (TRL), the card's settings"
submit_trained sft "toxbench align sft: SFT on the chosen continuations, the card's settings"
submit "$MODEL-subtract" "$WORK/models/subtract" "toxbench align subtract: probe direction, α matched to DPO's perplexity"
submit "$MODEL-ablate" "$WORK/models/ablate" "toxbench align ablate: the top toxic value vectors zeroed"
submit "$MODEL-profs" "$WORK/models/profs" "toxbench align profs: ProFS, the released GPT-2 defaults (k=2, layers 0.42:1.0, 500 pairs)"

"$TB" leaderboard validate ${LEADERBOARD_LIMIT:+--local} "$SUBS"  # a --limit board is a local one
"$TB" leaderboard verify "$SUBS"
"$TB" leaderboard render "$SUBS" --output-path "$SITE"
