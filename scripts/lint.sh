#!/usr/bin/env bash
# dbpool lint: clang-format and clang-tidy.
#
#   scripts/lint.sh                 format check, then clang-tidy
#   scripts/lint.sh --format        clang-format --dry-run -Werror over include/ tests/ examples/
#                                   bench/ only (what scripts/test.sh runs)
#   scripts/lint.sh --tidy          clang-tidy only: configures build/lint (clang++,
#                                   compile_commands.json) and checks tests/headers' generated
#                                   translation unit that includes every public header (about
#                                   15 s)
#   scripts/lint.sh --verify-tidy-config
#                                   only check that every glob in .clang-tidy enables a check
#                                   (a missing comma silently turns two checks into none)
#
# Nothing is modified. Exit status 0 when clean, 1 when something needs fixing.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
repo=$(pwd)

do_format=1
do_tidy=1
case "${1:-}" in
    "") ;;
    --format) do_tidy=0 ;;
    --tidy) do_format=0 ;;
    --verify-tidy-config) do_format=0; do_tidy=2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "lint: unknown option '$1' (see --help)" >&2; exit 2 ;;
esac
status=0

if [ "$do_format" -eq 1 ]; then
    mapfile -t files < <(find include tests examples bench \
        \( -name build -o -name 'build-*' \) -prune -o \
        -type f \( -name '*.hpp' -o -name '*.cpp' -o -name '*.h' -o -name '*.cc' \) -print \
        2>/dev/null | sort)
    # One clang-format process for every file (one per file spent most of its time starting);
    # each unformatted file names itself in "FILE:LINE:COL: error: code should be clang-formatted".
    format_status=0
    report=$(clang-format --dry-run -Werror "${files[@]}" 2>&1) || format_status=$?
    mapfile -t bad < <(printf '%s\n' "$report" |
        sed -nE 's/^([^:]+):[0-9]+:[0-9]+: error: .*/\1/p' | sort -u)
    if [ "$format_status" -ne 0 ] && [ "${#bad[@]}" -eq 0 ]; then
        bad=("(clang-format failed without naming a file: $(printf '%s\n' "$report" | head -n 1))")
    fi
    if [ "${#bad[@]}" -eq 0 ]; then
        echo "lint: clang-format: ${#files[@]} files clean"
    else
        echo "lint: clang-format: ${#bad[@]} of ${#files[@]} files need formatting" \
             "(see the diff with: clang-format FILE | diff -u FILE -):"
        printf '  %s\n' "${bad[@]}"
        status=1
    fi
fi

verify_tidy_config() {
    # The effective check list, as clang-tidy parsed .clang-tidy.
    local checks enabled glob item ok=1 matched check
    checks=$(clang-tidy --dump-config 2>/dev/null |
        sed -n 's/^Checks: *//p' | tr -d "\"'" | sed 's/\\n/ /g')
    enabled=$(clang-tidy --list-checks 2>/dev/null | tail -n +2 | sed 's/^ *//')
    IFS=',' read -r -a items <<<"$checks"
    for item in "${items[@]}"; do
        glob=$(echo "$item" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')
        [ -z "$glob" ] && continue
        if [[ "$glob" =~ [[:space:]] ]]; then
            echo "lint: .clang-tidy: '$glob' holds two globs (missing comma?)"
            ok=0
            continue
        fi
        [[ "$glob" == -* || "$glob" == clang-diagnostic-* ]] && continue
        matched=0
        while IFS= read -r check; do
            # shellcheck disable=SC2053  # $glob is a pattern on purpose
            if [[ "$check" == $glob ]]; then matched=1; break; fi
        done <<<"$enabled"
        if [ "$matched" -eq 0 ]; then
            echo "lint: .clang-tidy: '$glob' enables no check (typo, or removed in this clang-tidy)"
            ok=0
        fi
    done
    if [ "$ok" -eq 1 ]; then
        echo "lint: .clang-tidy: every glob enables a check ($(echo "$enabled" | wc -l) checks on)"
        return 0
    fi
    return 1
}

if [ "$do_tidy" -ge 1 ]; then
    verify_tidy_config || status=1
fi

if [ "$do_tidy" -eq 1 ]; then
    lint_build="$repo/build/lint"
    cxx=$(command -v clang++ || command -v c++)
    echo "lint: clang-tidy: configuring $lint_build"
    mkdir -p "$lint_build"
    if ! cmake -S "$repo" -B "$lint_build" -DCMAKE_BUILD_TYPE=Debug \
            -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
            -DDBPOOL_BUILD_TESTS=ON -DDBPOOL_BUILD_EXAMPLES=OFF -DDBPOOL_BUILD_BENCH=OFF \
            >"$lint_build/configure.log" 2>&1; then
        echo "lint: clang-tidy: configure failed, see $lint_build/configure.log"
        exit 1
    fi
    # The unit of tests/headers that includes every public header: .clang-tidy's header filter
    # reports each header's findings from it. (Whether each header compiles on its own is the
    # header check's job; one unit per header here parsed the library 69 times, 100 s.)
    unit="$lint_build/tests/headers/generated/all_headers.cpp"
    echo "lint: clang-tidy: every public header, through ${unit#"$repo"/}"
    log="$lint_build/clang-tidy.log"
    if clang-tidy -p "$lint_build" --quiet "$unit" >"$log" 2>&1; then
        echo "lint: clang-tidy: clean"
    else
        # Group the findings by header so each owner sees theirs.
        grep -E '(warning|error):' "$log" | sed "s|^$repo/||" | sort -u
        echo "lint: clang-tidy: findings above (full log: $log)"
        status=1
    fi
fi

exit "$status"
