#!/usr/bin/env bash
# Builds a libFuzzer target with clang (ASan+UBSan) and runs it on its seed
# corpus for a bounded time. Usage: tests/fuzz/run.sh TARGET SECONDS
#   TARGET: dtcp_parser | criteria_compiler | vici_decoder | config_loader
# The corpus is copied, so a run never changes the committed seeds; any crash
# input is kept in the work directory and the run fails.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
target=$1
seconds=${2:-30}
work=$(mktemp -d /tmp/xtap-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The pure DTCP engine only: no SSH transport, no service.
dtcp_engine=()
for f in "$SRC"/userspace/dtcp/*.cpp; do
  case "$(basename "$f")" in SshServer.cpp|DtcpService.cpp) ;; *) dtcp_engine+=("$f") ;; esac
done

libs=()
case "$target" in
  dtcp_parser)
    sources=("$SRC/tests/fuzz/dtcp/fuzz_dtcp_parser.cpp" "${dtcp_engine[@]}")
    corpus="$SRC/tests/fuzz/dtcp/corpus"
    libs=(-lcrypto)
    ;;
  criteria_compiler)
    # DTCP decoder -> compiler -> filters checked with the reference matcher.
    sources=("$SRC/tests/fuzz/criteria/fuzz_criteria_compiler.cpp" "${dtcp_engine[@]}"
             "$SRC/userspace/criteria/CriteriaCompiler.cpp" "$SRC/userspace/criteria/PrefixCover.cpp"
             "$SRC/userspace/dataplane/Filter.cpp" "$SRC/userspace/dataplane/ReferenceMatcher.cpp")
    corpus="$SRC/tests/fuzz/criteria/corpus"
    libs=(-lcrypto)
    ;;
  vici_decoder)
    # The pure vici codec and reply readers: no socket, no tunnel manager.
    sources=("$SRC/tests/fuzz/vici/fuzz_vici_decoder.cpp" "$SRC/ipsec/ViciMessage.cpp"
             "$SRC/ipsec/ViciPacket.cpp" "$SRC/ipsec/ViciCommands.cpp" "$SRC/ipsec/ViciBuilder.cpp"
             "$SRC/ipsec/ViciResult.cpp")
    corpus="$SRC/tests/fuzz/vici/corpus"
    ;;
  config_loader)
    sources=("$SRC/tests/fuzz/config/fuzz_config_loader.cpp" "$SRC/userspace/config/Config.cpp")
    corpus="$SRC/tests/fuzz/config/corpus"
    ;;
  *) echo "unknown fuzz target $target" >&2; exit 2 ;;
esac

# One translation unit (as the unity build does): the standard headers and
# nlohmann/json are compiled once, not once per source; about half the time.
for f in "${sources[@]}"; do echo "#include \"$f\""; done >"$work/fuzz_$target.cpp"
clang++ -std=c++20 -O1 -gline-tables-only -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=all -I"$SRC/userspace" -I"$SRC" -I"$SRC/bpf/include" "$work/fuzz_$target.cpp" \
  ${libs[@]+"${libs[@]}"} -o "$work/fuzz_$target"
mkdir -p "$work/corpus"
cp "$corpus"/* "$work/corpus/"
cd "$work"
if ! "./fuzz_$target" -max_total_time="$seconds" -max_len=8192 -print_final_stats=1 corpus 2>fuzz.log; then
  tail -40 fuzz.log >&2
  cp crash-* leak-* timeout-* "$SRC/" 2>/dev/null || true
  echo "fuzz $target: failure (inputs copied to the source tree root)" >&2
  exit 1
fi
grep -E 'stat::number_of_executed_units|Done' fuzz.log | tail -2
echo "fuzz $target: ${seconds}s without a finding"
