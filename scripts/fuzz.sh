#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ (see fuzz/README.md): builds them, then runs each
# for a bounded time, one at a time and single-process, on a scratch copy of its corpus
# (fuzz/corpus/<target> stays as committed). Exits non-zero if any target finds a crash,
# a hang or a leak of memory past the limit; the failing input is left in
# fuzz/artifacts/<target>/ and its path printed.
#
#   scripts/fuzz.sh [--seconds N] [--dev] [TARGET...]   all targets, 20 s each, by default
#
# --dev builds without optimizations: about half the build time of a cold machine, for
# many fewer executions a second; what scripts/test.sh's brief runs use.
#
# Builds with rustup's nightly toolchain if there is one, else with the default one and
# RUSTC_BOOTSTRAP=1; installs cargo-fuzz from crates.io when it is missing. Run as root:
# the layer_unpack target unpacks layers as the runtime does (owners, whiteout devices).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=20
profile=()
targets=()
while (($#)); do
    case "$1" in
        --seconds)
            seconds="${2:?--seconds needs a number}"
            shift 2
            ;;
        --seconds=*)
            seconds="${1#--seconds=}"
            shift
            ;;
        --dev)
            profile=(--dev)
            shift
            ;;
        -h | --help)
            sed -n '2,15p' "$0"
            exit 0
            ;;
        *)
            targets+=("$1")
            shift
            ;;
    esac
done

# The toolchain: rustup's nightly, else the stable one with RUSTC_BOOTSTRAP (cargo-fuzz
# needs nightly-only flags; a stable compiler accepts them with it).
if cargo +nightly --version >/dev/null 2>&1; then
    toolchain=(+nightly)
else
    echo "fuzz.sh: no nightly toolchain; using the default one with RUSTC_BOOTSTRAP=1" >&2
    toolchain=()
    export RUSTC_BOOTSTRAP=1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz (crates.io)"
    cargo install --locked cargo-fuzz
fi

# No sanitizer: the code under test is safe Rust, and libFuzzer's coverage, panics and
# overflow checks (debug assertions are on) are what find its bugs, at twice the speed
# of AddressSanitizer.
build_flags=(--sanitizer none "${profile[@]}")

cd fuzz
if ((${#targets[@]} == 0)); then
    mapfile -t targets < <(cargo "${toolchain[@]}" fuzz list)
fi
# One build for all targets: they share every dependency.
cargo "${toolchain[@]}" fuzz build "${build_flags[@]}"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()
for target in "${targets[@]}"; do
    corpus="$scratch/$target"
    mkdir -p "$corpus" "artifacts/$target"
    if [ -d "corpus/$target" ]; then
        cp -r "corpus/$target/." "$corpus/"
    fi
    echo "== $target: ${seconds}s"
    log="$scratch/$target.log"
    # -rss_limit_mb: a parser that holds more than this for one input is a finding.
    if cargo "${toolchain[@]}" fuzz run "${build_flags[@]}" "$target" "$corpus" -- \
        -max_total_time="$seconds" -jobs=1 -workers=1 -rss_limit_mb=2048 -timeout=25 \
        -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$log" | tail -n 2 || true
    else
        tail -n 40 "$log"
        echo "== $target FAILED: input in fuzz/artifacts/$target/"
        failed+=("$target")
    fi
done

if ((${#failed[@]})); then
    echo "fuzz.sh: findings in: ${failed[*]}"
    exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets ran ${seconds}s each without findings"
