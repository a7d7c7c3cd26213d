#!/usr/bin/env bash
# Checks that aarch64 binaries keep their baseline: instructions above armv8-a (SDOT/UDOT,
# SMMLA/UMMLA/USMMLA/USDOT) may appear only in functions compiled in *_dotprod.cpp /
# *_i8mm.cpp units, which run only after run-time detection. It catches the classic
# leak of per-file ISA flags: an inline function or template instantiated in an ISA unit
# (a weak symbol) that the linker keeps for baseline callers too.
# With --no-lse (Raspberry Pi 4: no LSE atomics), LSE atomic instructions may appear
# nowhere outside the ISA units either (-mno-outline-atomics must have taken effect).
#
# Usage: targets/check-isa-leaks.sh BUILD_DIR [--no-lse]
set -euo pipefail
build="${1:?usage: check-isa-leaks.sh BUILD_DIR [--no-lse]}"
no_lse=0
[ "${2:-}" = "--no-lse" ] && no_lse=1
OBJDUMP="${OBJDUMP:-aarch64-linux-gnu-objdump}"
NM="${NM:-aarch64-linux-gnu-nm}"

# Symbols defined by the ISA units (their code may use the instructions).
allowed="$(mktemp)"
trap 'rm -f "$allowed"' EXIT
find "$build" -name '*_dotprod.cpp.o' -o -name '*_i8mm.cpp.o' | while read -r o; do
    "$NM" --defined-only "$o" | awk '$2 ~ /^[tTwW]$/ {print $3}'
done | sort -u > "$allowed"

# Weak symbols an ISA unit shares with baseline units: the linker keeps one copy.
shared_weak=$(find "$build" -name '*.cpp.o' ! -name '*_dotprod.cpp.o' ! -name '*_i8mm.cpp.o' -print0 |
    xargs -0 "$NM" --defined-only 2>/dev/null | awk '$2 ~ /^[wW]$/ {print $3}' | sort -u | comm -12 - "$allowed" || true)

binaries=$(find "$build" -type f -perm -u+x \( -path '*/tests/test_*' -o -path '*/tools/*' \) ! -name '*.so' |
    xargs -r file | awk -F: '/ELF 64-bit.*ARM aarch64/ {print $1}')
[ -n "$binaries" ] || { echo "check-isa-leaks: no aarch64 executables under $build" >&2; exit 1; }

pattern='\t(sdot|udot|usdot|sudot|smmla|ummla|usmmla)\t'
if [ $no_lse = 1 ]; then
    pattern='\t(sdot|udot|usdot|sudot|smmla|ummla|usmmla|cas[a-z]*|ldadd[a-z]*|ldclr[a-z]*|ldeor[a-z]*|ldset[a-z]*|ld[su]max[a-z]*|ld[su]min[a-z]*|swp[a-z]*|stadd[a-z]*|stclr[a-z]*|steor[a-z]*|stset[a-z]*|st[su]max[a-z]*|st[su]min[a-z]*)\t'
fi

status=0
checked=0
for bin in $binaries; do
    checked=$((checked + 1))
    leaks=$("$OBJDUMP" -d --no-show-raw-insn "$bin" | awk -v pat="$pattern" '
        /^[0-9a-f]+ <.*>:$/ { fn = $2; gsub(/^<|>:$/, "", fn); next }
        $0 ~ pat { split($0, f, "\t"); if (!(fn in seen)) { seen[fn] = f[2]; print fn "\t" f[2] } }' |
        while IFS=$'\t' read -r fn insn; do
            grep -qxF "$fn" "$allowed" || echo "    $fn ($insn)"
        done)
    if [ -n "$leaks" ]; then
        echo "check-isa-leaks: $bin: instructions above the baseline outside the ISA units:"
        echo "$leaks"
        status=1
    fi
done
if [ -n "$shared_weak" ]; then
    echo "check-isa-leaks: note: weak symbols defined both in ISA units and baseline units (the linked copy is checked above):"
    echo "$shared_weak" | sed 's/^/    /' | head -20
fi
[ $status = 0 ] && echo "check-isa-leaks: $checked binaries OK$([ $no_lse = 1 ] && echo ', no LSE atomics')"
exit $status
