#!/usr/bin/env bash
# Writes the AFL dictionary of the `.dnn` targets (afl-fuzz -x FILE): the grammar's
# keywords and operators (the quoted literals of compiler/syntax/src/dnn.pest), the
# names the standard library declares (layers, functions), the builtins and the train
# block's fields and values as the spec's tables list them, and element types — so that
# mutations splice whole tokens instead of flipping bits inside them. Made from the
# sources each time, it stays in step with the language. Usage: bash dict.sh FILE
set -euo pipefail
out=${1:?usage: dict.sh FILE}
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
{
    # Literals of the grammar, without the ones that are only pest's own syntax.
    grep -o '"[^"]*"' "$root/compiler/syntax/src/dnn.pest" | sed 's/^"//; s/"$//' |
        grep -v -e '^$' -e ' ' -e '\\' -e '^/\*' -e '^\*/' -e '^//$'
    # `layer NAME`, `fn NAME`, `model NAME` of the standard library.
    grep -ho -E '^(layer|fn|model) [A-Za-z_][A-Za-z0-9_]*' "$root"/stdlib/*.dnn | cut -d' ' -f2
    # The first column of the spec's tables: builtins, train fields, optimizers, ...
    grep -ho -E '^\| `[a-z_][a-z0-9_]*' "$root"/spec/*.md | sed 's/^| `//'
    printf '%s\n' f32 f16 bf16 i32 i64 bool Int Float Bool Str npy idx csv text std::nn \
        std::losses std::activations std::shape B T '..S' '[B, 784]' '0:64' '1e-3'
} | sort -u | awk '{ gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); printf "\"%s\"\n", $0 }' > "$out"
