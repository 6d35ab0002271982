#!/usr/bin/env bash
# Copies each fuzz target's seed corpus (the files compiler/fuzz/tests/replay.rs runs)
# into DIR/TARGET/ for afl-fuzz's -i. Usage: bash seeds.sh DIR
set -euo pipefail
out=${1:?usage: seeds.sh DIR}
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
copy() { # target, files...
    local t=$1; shift
    mkdir -p "$out/$t"
    local i=0
    for f in "$@"; do
        # AFL wants small seeds: skip anything over 1 MB.
        if [ -f "$f" ] && [ "$(stat -c %s "$f")" -le 1048576 ]; then
            cp "$f" "$out/$t/$i-$(basename "$f")"; i=$((i + 1))
        fi
    done
}
dnn=$(find "$root/examples" "$root/stdlib" "$root/compiler/driver/tests/filetests" -name '*.dnn' | sort)
copy check_and_format $dnn
copy lower_and_run $dnn
copy loaders $(find "$root/compiler/driver/tests/filetests/data" "$root/compiler/session/tests/data" -type f | sort)
copy safetensors $(find "$root/compiler/driver/tests/filetests/data" "$root/compiler/driver/tests/data" -name '*.safetensors' | sort)
copy ir_text $(find "$root/compiler/driver/tests/golden" "$root/compiler/passes/tests/ir" -name '*.ir' | sort)
copy lsp_transport $(find "$root/compiler/fuzz/seeds/lsp_transport" -type f | sort)
