#!/usr/bin/env bash
# Run by CTest (see CMakeLists.txt here) for the libFuzzer targets in fuzz/.
#   fuzz_test.sh build CMAKE SOURCE_DIR BUILD_DIR
#     configures and builds fuzz/ with clang++ into BUILD_DIR.
#   fuzz_test.sh run BUILD_DIR TARGET SECONDS SEEDS [REGRESSIONS]
#     runs BUILD_DIR/TARGET for SECONDS over a fresh copy of the seed corpus
#     and the inputs of REGRESSIONS (if the folder exists); what it finds
#     lands in BUILD_DIR/run/TARGET/artifacts.
# Exits 77, which CTest reports as skipped, if clang++ is not installed.
set -euo pipefail

clangxx=$(command -v clang++ || true)
if [[ -z $clangxx ]]; then
  echo "skipped: clang++ not found (Debian: apt-get install clang libclang-rt-14-dev)"
  exit 77
fi

case ${1:-} in
  build)
    cmake=$2 src=$3 build=$4
    "$cmake" -S "$src" -B "$build" -DCMAKE_CXX_COMPILER="$clangxx"
    "$cmake" --build "$build" -j1
    ;;
  run)
    build=$2 target=$3 seconds=$4 seeds=$5 regressions=${6:-}
    work=$build/run/$target
    rm -rf "$work"
    mkdir -p "$work/corpus" "$work/artifacts"
    cp "$seeds"/* "$work/corpus/"
    if [[ -n $regressions && -d $regressions ]]; then
      cp "$regressions"/* "$work/corpus/"
    fi
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
    # -malloc_limit_mb: no input of a few KB needs 64 MB at once; a decoder
    # that allocates that much trusts a length it has not checked. The RSS
    # limit leaves room for ASan's quarantine (about 350 MB after a while).
    # -timeout: no input takes a second; 10 s is a hang, even on a busy CI.
    # -error_exitcode: libFuzzer exits 77 on a crash by default, which CTest
    # would report as skipped; and whatever exits 77, it is a failure here.
    rc=0
    "$build/$target" -max_total_time="$seconds" -timeout=10 \
      -malloc_limit_mb=64 -rss_limit_mb=1024 -error_exitcode=1 \
      -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
      "$work/corpus" || rc=$?
    if [[ $rc -eq 77 ]]; then
      rc=1
    fi
    exit $rc
    ;;
  *)
    echo "usage: fuzz_test.sh build CMAKE SOURCE_DIR BUILD_DIR" >&2
    echo "       fuzz_test.sh run BUILD_DIR TARGET SECONDS SEEDS [REGRESSIONS]" >&2
    exit 2
    ;;
esac
