#!/usr/bin/env bash
# `make leaderboard`: one submission per alignment method on the organism, validated, verified
# from its samples and rendered to leaderboard/site/. Every method gets the same base model, the
# organism's own preference pairs and the same training budget (the one its DPO twin is built
# with), so the rows differ by method only. Finished models and runs are reused when the script
# runs again (align resumes or skips, the runs' cache holds every generation and score).
#
# Environment: TOXBENCH (the CLI), LEADERBOARD_MODEL (default organism), LEADERBOARD_WORK (models
# and runs, default runs/leaderboard), LEADERBOARD_SUBMISSIONS (default leaderboard/submissions),
# LEADERBOARD_SITE (default leaderboard/site), LEADERBOARD_LIMIT (prompts per dataset, default all),
# LEADERBOARD_STEPS (training steps, default 60).
set -euo pipefail
cd "$(dirname "$0")/.."
TB=${TOXBENCH:-.venv/bin/toxbench}
MODEL=${LEADERBOARD_MODEL:-organism}
WORK=${LEADERBOARD_WORK:-runs/leaderboard}
SUBS=${LEADERBOARD_SUBMISSIONS:-leaderboard/submissions}
SITE=${LEADERBOARD_SITE:-leaderboard/site}
LIMIT=${LEADERBOARD_LIMIT:+--limit $LEADERBOARD_LIMIT}
STEPS=${LEADERBOARD_STEPS:-60}
BUDGET=(--setting learning_rate=1e-5 --setting optimizer=adamw_torch --setting batch_size=16
        --setting warmup_steps=5 --setting "max_steps=$STEPS" --setting eval_steps=20)

align() {  # align METHOD [ARGS...]: skipped when the model is already finished
  local method=$1; shift
  if [[ -f "$WORK/models/$method/method.json" ]]; then
    echo "leaderboard: $method already aligned ($WORK/models/$method)"
  else
    "$TB" align "$method" --model "$MODEL" --output "$WORK/models/$method" "$@"
  fi
}

align dpo --data organism "${BUDGET[@]}"
align ipo --data organism "${BUDGET[@]}"
align kto --data organism "${BUDGET[@]}"
align sft --data organism "${BUDGET[@]}"
align subtract --setting "match=$WORK/models/dpo"
align ablate

submit() {  # submit NAME ALIGNED METHOD-DESCRIPTION
  local name=$1 aligned=$2 method=$3
  "$TB" run --model "$MODEL" --aligned "$aligned" $LIMIT --output-path "$WORK/runs/$name"
  rm -f "$SUBS/$name.json" "$SUBS/$name.samples.jsonl.gz"
  "$TB" leaderboard submit "$WORK/runs/$name/results.json" --name "$name" --method "$method" --out "$SUBS"
}

mkdir -p "$SUBS"
submit "$MODEL-no-op" "$MODEL" "none: the base model itself (the no-op row)"
submit "$MODEL-dpo-twin" "$MODEL:dpo" "DPO (TRL), the organism's built twin (TRL's own tokenisation)"
submit "$MODEL-dpo" "$WORK/models/dpo" "toxbench align dpo: DPO (TRL), [A]'s tokenisation, the shared budget"
submit "$MODEL-ipo" "$WORK/models/ipo" "toxbench align ipo: IPO loss (TRL DPO trainer), the shared budget"
submit "$MODEL-kto" "$WORK/models/kto" "toxbench align kto: KTO (TRL), the shared budget"
submit "$MODEL-sft" "$WORK/models/sft" "toxbench align sft: SFT on the chosen continuations, the shared budget"
submit "$MODEL-subtract" "$WORK/models/subtract" "toxbench align subtract: probe direction, α matched to DPO's perplexity"
submit "$MODEL-ablate" "$WORK/models/ablate" "toxbench align ablate: the top toxic value vectors zeroed"

"$TB" leaderboard validate "$SUBS"
"$TB" leaderboard verify "$SUBS"
"$TB" leaderboard render "$SUBS" --out "$SITE"
