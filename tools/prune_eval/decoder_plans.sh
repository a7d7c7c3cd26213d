# Sourced by run_decoder_grid.sh and run_feather_grid.sh after `build=$1; stem=$2; scenes=$3;
# plans=$4`: the glimpse binary, the model options, and plan-file writers.
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
