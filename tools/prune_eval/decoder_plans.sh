# Sourced by run_decoder_grid.sh and run_feather_grid.sh after `build=$1; stem=$2; scenes=$3;
# plans=$4`: the glimpse binary, the model options, plan-file writers and the eval loop.
bin="$build/tools/glimpse/glimpse"
m="-m models/bundled/$stem-text.gguf --mmproj models/bundled/$stem-mmproj.gguf -t 1"
mkdir -p "$plans"
plan() {  # plan NAME STAGES_JSON
  printf '{"format": "glimpse.pruning-plan", "version": 1, "stages": [%s]}\n' "$2" > "$plans/$1.json"
}
dec() {  # dec LAYER METHOD KEEP [ARGS_JSON]
  printf '{"at": "decoder_layer", "layer": %s, "method": "%s", "keep": %s%s}' "$1" "$2" "$3" "${4:+, \"args\": $4}"
}
post='{"at": "after_projector", "method": "divprune", "keep": 0.5}'
eval_runs() {  # eval_runs "NAME ...": none, random-F (after the projector) or the plan NAME, one
  # `glimpse eval --json` line each, with its "run" name and "model_stem" added
  for r in $1; do
    case $r in
      none) out=$("$bin" eval $m --preset bundled --scenes "$scenes" --json) ;;
      random-*) out=$("$bin" eval $m --preset bundled --scenes "$scenes" --json --prune random --keep "${r#random-}") ;;
      *) out=$("$bin" eval $m --preset bundled --scenes "$scenes" --json --plan "$plans/$r.json") ;;
    esac
    printf '%s\n' "$out" | sed "s/^{/{\"run\": \"$r\", \"model_stem\": \"$stem\", /"
  done
}
