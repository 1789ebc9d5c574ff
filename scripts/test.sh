#!/usr/bin/env bash
# dbpool's test command (README, CI: .ci/run). Run from anywhere:
#
#   scripts/test.sh [--no-tidy] [--no-deps] [--asan-only | --tsan-only | --clang-only]
#   scripts/test.sh --quick [--no-deps]
#
# 1. scripts/install-deps.sh (skipped with --no-deps; a no-op when everything is installed).
# 2. build/asan: Clang with libstdc++, Debug, DBPOOL_SANITIZE=address,undefined; build, then
#    ctest every test. Clang, not GCC: its ASan+UBSan compile takes half the CPU (about 420 s
#    for the tree instead of 750), and it is the README's second compiler setup; GCC's own
#    warnings and sanitizer are the TSan tree's. Being built with Clang and libstdc++, this tree
#    is also the check that every example and README program compiles there (tests/docs).
# 3. build/tsan: GCC, Debug, DBPOOL_SANITIZE=thread; build, then ctest every test except those
#    labelled "packaging" (the header and install/consumer checks) or "scripts" (the test-bed
#    scripts' own tests): single-threaded and sanitizer-independent, so running them twice proves
#    nothing; the tree is configured with DBPOOL_TEST_PACKAGING=OFF, so it does not build them
#    either. Rule: everything else, core unit tests included, runs under TSan too; it is cheap
#    enough and any test that starts a thread (not only the [concurrency] ones) can race. One
#    exception, which the tree does not build: the schedule explorer's tests, whose scheduler
#    orders every step, so TSan can see no race in them (tests/core/CMakeLists.txt).
# 4. build/clang-libcxx: clang++ with libc++ (not libstdc++) and UBSan including
#    -fsanitize=float-cast-overflow (GCC's UBSan leaves that check out). Builds and runs the
#    core tests, the MySQL unit tests, the header self-containment check, the compile-fail
#    checks, and every fork() test: ASan's allocator is not fork-safe while another thread
#    allocates and TSan cannot follow a child that starts threads (tests/fork_support.hpp), so
#    this tree, without either, is where the concurrent fork tests run.
# 5. scripts/lint.sh --format (clang-format check) and --tidy (clang-tidy over one unit that
#    includes every public header, about 15 s; --no-tidy skips it). clang-tidy runs by default
#    because an optional check rots: 24 findings had piled up before it did.
# 6. scripts/docs.sh: the API reference with Doxygen, every warning an error (a public entity
#    without a `///` comment fails it); about 2-5 s.
#
# --quick is the inner loop while working, not a replacement for the whole command: in build/asan
# only, it builds and runs the core unit tests, the MySQL and PostgreSQL unit tests (no server),
# the compile-fail checks and the header checks; about a minute from a warm build directory.
#
# Order: the trees are configured, build/asan is built; then tsan and clang-libcxx build one
# after the other in the background (niced) while the tests of the tree before run, since most
# tests wait on a server and leave a core idle. A tree's tests run in two parts: first those
# that may share the machine (ctest -j4), then those that must not share it with other tests
# (labels serial, faults, cluster: [timing], [serial], fault and cluster tests), one at a time.
# A background build may go on beside the second part: it runs at nice 10, so the test and its
# servers (nice 0) get the cores whenever they want them (CFS weights 1024 to 110). Each of
# these two trees starts its servers and test beds once (the beds in the background while the
# first part runs) and stops them in the background after the second. clang-libcxx, the last
# tree, runs its tests once built, CTest starting and stopping its servers. Steps 5 and 6 need no
# build: they run in the background (niced) from the first tree's one-at-a-time tests on, and
# their output is shown at the end.
#
# Builds use Ninja when it is installed (scripts/install-deps.sh installs ninja-build), Makefiles
# otherwise, and link with LLVM's lld when it is installed (install-deps.sh installs lld). ctest runs 4 tests at a time by default: most tests wait on a server, and the tests
# that must have the machine to themselves are scheduled by their tags (tests/CMakeLists.txt:
# [timing] and [serial] run alone, [concurrency] stress tests one at a time).
#
# The MySQL and PostgreSQL integration and fault tests start their own throwaway servers
# through CTest fixtures (scripts/mariadb.sh, scripts/postgres.sh); no system MariaDB or
# PostgreSQL service is used or started. The PostgreSQL backend is required (DBPOOL_WITH_PG=ON),
# so a missing libpq fails the configure step instead of silently skipping its tests.
#
# Ends with the seconds each phase took (configure, build, ctest per tree, lint, docs) and one
# line "N passed, N failed": the sum of the ctest counts of the trees, plus one check each for
# the lint steps and the API reference; a configure or build failure counts as one failed check.
# Exit status is non-zero when anything failed.
#
# Environment: JOBS (build parallelism, default 2), CTEST_JOBS (ctest -j, default 4),
# CTEST_TIMEOUT (seconds per test, default 600).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
repo=$(pwd)

with_deps=1
with_tidy=1
quick=0
trees=(asan tsan clang-libcxx)
for arg in "$@"; do
    case "$arg" in
        --quick) quick=1 ;;
        --tidy) with_tidy=1 ;;
        --no-tidy) with_tidy=0 ;;
        --no-deps) with_deps=0 ;;
        --asan-only) trees=(asan) ;;
        --tsan-only) trees=(tsan) ;;
        --clang-only) trees=(clang-libcxx) ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) echo "test.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
    esac
done

jobs=${JOBS:-2}
ctest_jobs=${CTEST_JOBS:-4}
ctest_timeout=${CTEST_TIMEOUT:-600}
passed=0
failed=0
notes=()
timings=()

# child_cpu VAR: sets VAR to the CPU seconds (user + system) used so far by the finished
# children of this shell (`times` must run in this shell, not in a command substitution).
times_file=$(mktemp)
trap 'rm -f "$times_file"' EXIT
child_cpu() {
    times >"$times_file"
    printf -v "$1" '%s' "$(tail -n 1 "$times_file" | awk '{ t = 0; for (i = 1; i <= 2; i++) {
        split($i, p, /[ms]/); t += p[1] * 60 + p[2] } printf "%d", t }')"
}

# record NAME BEGAN CPU_BEGAN: adds "NAME  wall s  (CPU s)" to the timing summary.
record() {
    local cpu
    child_cpu cpu
    timings+=("$(printf '%-34s %5d s   (CPU %5d s)' "$1" $((SECONDS - $2)) $((cpu - $3)))")
}

# timed NAME COMMAND...: runs COMMAND and records its wall-clock and CPU seconds under NAME.
timed() {
    local name=$1 began=$SECONDS cpu_began status=0
    child_cpu cpu_began
    shift
    "$@" || status=$?
    record "$name" "$began" "$cpu_began"
    return "$status"
}

# Ninja when installed: it schedules the two cores better and starts faster than make.
generator=()
if command -v ninja >/dev/null 2>&1; then
    generator=(-G Ninja)
fi

# configure DIR CMAKE-ARGS...: cmake -S repo -B DIR with the chosen generator. A tree configured
# earlier with another generator or compiler is removed first (cmake refuses to switch
# generators, and a compiler change throws the cache away half-way).
configure() {
    local dir=$1 arg compiler=c++
    shift
    for arg in "$@"; do
        case "$arg" in -DCMAKE_CXX_COMPILER=*) compiler=${arg#*=} ;; esac
    done
    if [ -f "$dir/CMakeCache.txt" ]; then
        local cached wanted
        cached=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$dir/CMakeCache.txt")
        wanted=$(command -v "$compiler" 2>/dev/null || echo "$compiler")
        if [ "${#generator[@]}" -gt 0 ] &&
            ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$dir/CMakeCache.txt"; then
            echo "test.sh: $dir was configured for another generator; starting it afresh"
            rm -rf "$dir"
        elif [ "$(readlink -f "$cached")" != "$(readlink -f "$wanted")" ]; then
            echo "test.sh: $dir was configured with $cached, not $compiler; starting it afresh"
            rm -rf "$dir"
        fi
    fi
    cmake -S "$repo" -B "$dir" "${generator[@]}" "$@"
}

# Every tree is a Debug build with line tables only (-g1): a sanitizer report needs file and
# line, and full debug information made the compile about 8 % slower.
debug_build=(-DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-g1)

# Sanitizer runtime options: stop at the first report, with a stack; TSan reads the
# suppressions for the uninstrumented client library (tests/tsan.supp), LSan those for
# deliberate leaks (tests/lsan.supp).
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:detect_leaks=1:print_stacktrace=1:strict_init_order=1"
export LSAN_OPTIONS="suppressions=$repo/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$repo/tests/tsan.supp"

section() { printf '\n==== %s ====\n' "$*"; }

start=$SECONDS
if [ "$with_deps" -eq 1 ]; then
    section "dependencies"
    if ! timed "dependencies" bash scripts/install-deps.sh; then
        echo "test.sh: installing dependencies failed"
        echo "0 passed, 1 failed"
        exit 1
    fi
fi

# count_results NAME LOG: adds the ctest summary in LOG to the totals.
count_results() {
    local name=$1 log=$2
    # "100% tests passed, 0 tests failed out of 12" (absent when no test matched).
    local line total fails
    line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
    if [ -z "$line" ]; then
        if grep -q 'No tests were found' "$log"; then
            notes+=("$name: no tests found")
        else
            failed=$((failed + 1)); notes+=("$name: ctest gave no summary (crashed?)")
        fi
        return
    fi
    fails=$(echo "$line" | sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/')
    total=$(echo "$line" | sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/')
    passed=$((passed + total - fails))
    failed=$((failed + fails))
    notes+=("$name: $((total - fails)) of $total tests passed")
}

# run_ctest NAME DIR LOG [ctest args...]: ctest in DIR, its output in LOG too, counted.
run_ctest() {
    local name=$1 dir=$2 log=$3 began=$SECONDS cpu_began
    child_cpu cpu_began
    shift 3
    (cd "$dir" && ctest --output-on-failure -j "$ctest_jobs" --timeout "$ctest_timeout" "$@") \
        2>&1 | tee "$log"
    record "$name" "$began" "$cpu_began"
    count_results "$name" "$log"
}

# The tests that must not share the machine with other tests: [timing] and [serial] (label
# serial or LABEL_serial, tests/CMakeLists.txt), the fault tests and the cluster tests. They run
# one at a time (RUN_SERIAL), after the tree's other tests, beside at most a niced build.
quiet_labels='serial|faults|cluster'
clang_sanitize="-fsanitize=undefined,float-cast-overflow -fno-sanitize-recover=all"

# LLVM's linker when installed (scripts/install-deps.sh installs lld): a sanitizer test program
# links in 0.5 s of CPU with it against 1.4 s with GNU ld, and the trees link some 160 programs.
# GCC and Clang both take -fuse-ld=lld.
link_flags=""
if command -v ld.lld >/dev/null 2>&1; then
    link_flags="-fuse-ld=lld"
fi

# configure_tree TREE: configures build/TREE (asan, tsan or clang-libcxx; see the header).
configure_tree() {
    local tree=$1 args=()
    case "$tree" in
        asan) args=(-DCMAKE_CXX_COMPILER=clang++ -DDBPOOL_SANITIZE=address,undefined
            -DDBPOOL_WITH_PG=ON -DCMAKE_EXE_LINKER_FLAGS="$link_flags") ;;
        tsan) args=(-DDBPOOL_SANITIZE=thread -DDBPOOL_WITH_PG=ON -DDBPOOL_TEST_PACKAGING=OFF
            -DCMAKE_EXE_LINKER_FLAGS="$link_flags") ;;
        clang-libcxx)
            args=(-DCMAKE_CXX_COMPILER=clang++
                -DCMAKE_CXX_FLAGS="-stdlib=libc++ $clang_sanitize -fno-omit-frame-pointer"
                -DCMAKE_EXE_LINKER_FLAGS="-stdlib=libc++ $clang_sanitize $link_flags"
                -DDBPOOL_SANITIZE= -DDBPOOL_BUILD_EXAMPLES=OFF) ;;
    esac
    section "$tree: configure (${args[*]})"
    if ! timed "$tree: configure" configure "$repo/build/$tree" "${debug_build[@]}" \
            -DDBPOOL_BUILD_TESTS=ON -DDBPOOL_BUILD_BENCH=OFF "${args[@]}"; then
        failed=$((failed + 1)); notes+=("$tree: configure failed")
        return 1
    fi
}

# build_tree TREE: builds what TREE runs: everything, except in clang-libcxx (see the header).
build_tree() {
    local dir="$repo/build/$1" targets=()
    if [ "$1" = clang-libcxx ]; then
        # Every core test program, whatever it is called (the schedule explorer's and the
        # allocation-failure program included), and the other targets this tree runs.
        mapfile -t targets < <(targets_matching "$dir" \
            'dbpool_core(_[a-z0-9_]+)?_tests|dbpool_mysql_unit_tests|dbpool_fault_tests|dbpool_header_check_main')
        if [ "${#targets[@]}" -eq 0 ]; then
            echo "test.sh: no targets to build in $dir"
            return 1
        fi
        echo "building ${targets[*]}"
        targets=(--target "${targets[@]}")
    fi
    cmake --build "$dir" -j "$jobs" "${targets[@]}"
}

# test_tree TREE PART: ctest in build/TREE. PART is "all" (every test, each server started and
# stopped by CTest around the tests that need it), or, with the servers already up (test_parts),
# "busy" (what may run beside a background build) or "quiet" (the quiet_labels tests).
test_tree() {
    local tree=$1 part=$2 dir="$repo/build/$1" select=() excluded=''
    case "$tree" in
        tsan) excluded='packaging|scripts' ;;
        clang-libcxx) select=(-R '^(core|mysql_unit):|^headers\.|^mysql_compile_fail:|^faults:.*fork') ;;
    esac
    case "$part" in
        # The servers start as CTest fixtures, beside the tests that need none, and stay up for
        # the quiet part (-FC: no cleanup); the beds are test_parts' business.
        busy) excluded="${excluded:+$excluded|}$quiet_labels|server_stop|bed_start|bed_stop"
            select+=(-FC '.*') ;;
        # Every server and bed is up: no fixture test is added (-FA) or run again.
        quiet) excluded="${excluded:+$excluded|}$server_labels"
            select+=(-L "$quiet_labels" -FA '.*') ;;
    esac
    [ -n "$excluded" ] && select+=(-LE "$excluded")
    section "$tree: ctest ($part: ${select[*]})"
    run_ctest "$tree: ctest -j$ctest_jobs, $part" "$dir" "$dir/ctest-$part.log" "${select[@]}"
}

# The start and stop tests of the throwaway servers and test beds (tests/CMakeLists.txt):
# server_* for those the ordinary integration tests use, bed_* for those only quiet_labels
# tests use (fault servers, replication and Galera beds).
server_labels='server_start|server_stop|bed_start|bed_stop'
stopping=()  # "NAME LOG PID" of the background ctest runs that stop a tree's servers

# test_parts TREE: the tests of a tree that is not the last, in two parts, its servers and beds
# started once: the beds begin starting in the background (Galera takes 15 s); the tests that
# may share the machine run, their servers starting first; then, once the beds are up, the
# quiet_labels tests; then every server and bed stops in the background (counted at the end).
test_parts() {
    local tree=$1 dir="$repo/build/$1" beds_log="$repo/build/$1/ctest-beds.log" beds_pid
    section "$tree: test beds start (in the background)"
    (cd "$dir" && ctest -j8 --timeout "$ctest_timeout" --output-on-failure -L '^bed_start$') \
        >"$beds_log" 2>&1 &
    beds_pid=$!
    test_tree "$tree" busy
    local began=$SECONDS
    wait "$beds_pid"
    cat "$beds_log"
    timings+=("$(printf '%-34s %5d s' "$tree: waiting for the test beds" $((SECONDS - began)))")
    count_results "$tree: ctest, test beds start" "$beds_log"
    start_checks
    test_tree "$tree" quiet
    local stop_log="$dir/ctest-stop.log"
    (cd "$dir" && ctest -j8 --timeout "$ctest_timeout" --output-on-failure \
        -L '^(server_stop|bed_stop)$') >"$stop_log" 2>&1 &
    stopping+=("$tree $stop_log $!")
}

# wait_stopped: waits for the background stops of test_parts and counts them.
wait_stopped() {
    local entry tree log pid
    for entry in "${stopping[@]}"; do
        read -r tree log pid <<<"$entry"
        wait "$pid"
        count_results "$tree: ctest, servers stop" "$log"
    done
    stopping=()
}

# build_in_background TREE...: builds each TREE in turn, niced so that the tests running in the
# foreground keep the cores they need; TREE's log goes to build/TREE/build.log and its exit
# status and seconds to build/TREE/build.status.
build_in_background() {
    renice -n 10 -p "$BASHPID" >/dev/null 2>&1 || true
    local tree began status
    for tree in "$@"; do
        began=$SECONDS
        status=0
        build_tree "$tree" >"$repo/build/$tree/build.log" 2>&1 || status=$?
        echo "$status $((SECONDS - began))" >"$repo/build/$tree/build.status"
    done
}

# wait_for_build TREE PID: waits (at most an hour) until the background build PID has built TREE,
# shows the end of its log, records it; fails when the build failed.
wait_for_build() {
    local tree=$1 pid=$2 status_file="$repo/build/$1/build.status" began=$SECONDS
    section "$tree: build (in the background, -j$jobs, niced)"
    while [ ! -s "$status_file" ] && kill -0 "$pid" 2>/dev/null &&
        [ $((SECONDS - began)) -lt 3600 ]; do
        sleep 1
    done
    local status=1 seconds=0
    [ -s "$status_file" ] && read -r status seconds <"$status_file"
    tail -n 40 "$repo/build/$tree/build.log"
    timings+=("$(printf '%-34s %5d s   (CPU: in the total)' "$tree: build (background)" "$seconds")")
    if [ "$status" -ne 0 ]; then
        failed=$((failed + 1)); notes+=("$tree: build failed (build/$tree/build.log)")
        return 1
    fi
}

# The checks that need no build (steps 5 and 6): "NAME|COMMAND|NOTE" each, NOTE what a failure
# says in the summary.
checks=("lint: clang-format|bash scripts/lint.sh --format|lint: clang-format check failed")
if [ "$with_tidy" -eq 1 ]; then
    checks+=("lint: clang-tidy|bash scripts/lint.sh --tidy|lint: clang-tidy check failed")
fi
checks+=("docs|bash scripts/docs.sh|docs: doxygen reported undocumented or broken API docs")
checks_pid=""
checks_dir="$repo/build/checks"

# start_checks: runs the checks one after the other in the background, niced like a build, so
# they use the cores the first tree's one-at-a-time tests leave idle; each one's output goes to
# build/checks/N.log and "STATUS SECONDS" to build/checks/N.status. Started once.
start_checks() {
    [ -n "$checks_pid" ] && return
    rm -rf "$checks_dir"
    mkdir -p "$checks_dir"
    (
        renice -n 10 -p "$BASHPID" >/dev/null 2>&1 || true
        local i name command note began status
        for i in "${!checks[@]}"; do
            IFS='|' read -r name command note <<<"${checks[$i]}"
            began=$SECONDS
            status=0
            $command >"$checks_dir/$i.log" 2>&1 || status=$?
            echo "$status $((SECONDS - began))" >"$checks_dir/$i.status"
        done
    ) &
    checks_pid=$!
}

# finish_checks: starts the checks if no tree did, waits for them, shows their output and counts
# each as one check.
finish_checks() {
    start_checks
    local began=$SECONDS i name command note status seconds
    wait "$checks_pid"
    for i in "${!checks[@]}"; do
        IFS='|' read -r name command note <<<"${checks[$i]}"
        section "$name (in the background, niced)"
        cat "$checks_dir/$i.log" 2>/dev/null
        status=1
        seconds=0
        [ -s "$checks_dir/$i.status" ] && read -r status seconds <"$checks_dir/$i.status"
        timings+=("$(printf '%-34s %5d s   (CPU: in the total)' "$name (background)" "$seconds")")
        if [ "$status" -eq 0 ]; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1)); notes+=("$note")
        fi
    done
    timings+=("$(printf '%-34s %5d s' "waiting for lint and docs" $((SECONDS - began)))")
}

# run_trees TREE...: configures every tree and builds the first; then the others build in the
# background, one after the other, while the tests of the tree before run: first those that may
# share the machine, then the quiet_labels tests. The last tree runs all its tests once built.
run_trees() {
    local tree usable=() built=() pid=""
    for tree in "$@"; do
        configure_tree "$tree" && usable+=("$tree")
    done
    [ "${#usable[@]}" -eq 0 ] && return
    local first=${usable[0]} rest=("${usable[@]:1}")
    section "$first: build (-j$jobs)"
    if timed "$first: build" build_tree "$first"; then
        built+=("$first")
    else
        failed=$((failed + 1)); notes+=("$first: build failed")
    fi
    if [ "${#rest[@]}" -eq 0 ]; then
        [ "${#built[@]}" -eq 1 ] && test_tree "$first" all
        return
    fi
    for tree in "${rest[@]}"; do rm -f "$repo/build/$tree/build.status"; done
    build_in_background "${rest[@]}" &
    pid=$!
    [ "${#built[@]}" -eq 1 ] && test_parts "$first"
    for tree in "${rest[@]}"; do
        wait_for_build "$tree" "$pid" || continue
        if [ "$tree" = "${rest[-1]}" ]; then
            test_tree "$tree" all
        else
            test_parts "$tree"
        fi
    done
    wait "$pid" 2>/dev/null
    wait_stopped
}

# targets_matching DIR PATTERN: the build targets of DIR whose whole name matches the extended
# regular expression PATTERN, one per line ("NAME: phony" from Ninja, "... NAME" from Make).
targets_matching() {
    cmake --build "$1" --target help |
        sed -nE "s/^(\\.\\.\\. )?($2)(: phony)?\$/\\2/p" | sort -u
}

# --quick: the unit tests (no server) and the header checks of the ASan+UBSan tree.
run_quick() {
    local dir="$repo/build/asan" targets
    configure_tree asan || return
    # Every core test program, whatever it is called, plus the backends' unit tests.
    mapfile -t targets < <(targets_matching "$dir" \
        'dbpool_core(_[a-z0-9_]+)?_tests|dbpool_(mysql|pg)_unit_tests|dbpool_header_check_main')
    section "asan: build ${targets[*]} (-j$jobs)"
    if [ "${#targets[@]}" -eq 0 ] ||
        ! timed "asan: build" cmake --build "$dir" -j "$jobs" --target "${targets[@]}"; then
        failed=$((failed + 1)); notes+=("asan: build failed")
        return
    fi
    section "asan: ctest (core, unit, headers, compile-fail)"
    run_ctest "asan: ctest -j$ctest_jobs" "$dir" "$dir/ctest-quick.log" \
        -R '^(core|mysql_unit|pg_unit)[:.]|^headers\.|^mysql_compile_fail:'
}

summary() {
    section "summary ($((SECONDS - start)) s)"
    printf '%s\n' "${timings[@]}"
    local cpu
    child_cpu cpu
    printf '%-34s %5d s   (CPU %5d s)\n' "total" $((SECONDS - start)) "$cpu"
    printf '%s\n' "${notes[@]}"
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}

if [ "$quick" -eq 1 ]; then
    run_quick
    summary
    exit
fi

run_trees "${trees[@]}"

finish_checks

summary
