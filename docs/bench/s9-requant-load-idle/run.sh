#!/usr/bin/env bash
# Idle: load time with --numerics fast (f16 mmproj requantized at load), before (302fe33, one
# thread) and after (main, the model's pool of 2), interleaved A B x 5.
cd /work/tmp/s9/load
A=/tmp/base9/build/tools/bench/glimpse-bench
B=/work/main/build/tools/bench/glimpse-bench
args="e2e -m /tmp/wt27/s256-text-q8_0.gguf --mmproj /tmp/wt27/s256-mmproj.gguf --image /tmp/wt27/img.jpg -n 1 -t 2 --max-tiles 1 --numerics fast"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in 1 2 3 4 5; do
  $A $args > before-r$r.json 2>/dev/null
  $B $args > after-r$r.json 2>/dev/null
  python3 -c "import json;a=json.load(open('before-r$r.json'))['timings_ms'];b=json.load(open('after-r$r.json'))['timings_ms'];print('r$r load ms before', a['load'], 'after', b['load'], '| compile_vision before', a['compile_vision'], 'after', b['compile_vision'])"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
