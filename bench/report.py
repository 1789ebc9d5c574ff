#!/usr/bin/env python3
"""Turns the benchmark outputs in a results directory into tables and target checks.

    bench/report.py RESULTS_DIR

Reads pool_overhead.json (every cell of every repetition), primitives.json,
server_throughput.json and .csv, and pool_memory.json; prints the tables and every target with
met/missed, writes RESULTS_DIR/summary.md (the same text), RESULTS_DIR/curve.dat (cycles/s
against threads on 8 connections, one column per pool) and RESULTS_DIR/throughput.dat
(requests/s against threads per server variant) for gnuplot.

Ratios are taken inside one repetition (the cells of a repetition run back to back) and the
median over repetitions is reported. Exits 0 whether or not targets are met: missing a target
is a result, not an error.
"""

import csv
import json
import os
import statistics
import sys

out_lines = []
targets = []  # (target, measured, met)


def say(line=""):
    print(line)
    out_lines.append(line)


def load(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def target(name, measured, met):
    targets.append((name, measured, met))


# --- no-op cells ------------------------------------------------------------------------------

class Cells:
    """The cells of pool_overhead.json, grouped by configuration, pool and repetition."""

    def __init__(self, data):
        self.groups = {}
        for c in data["cells"]:
            key = (c["section"], c["threads"], c["connections"], c["held"])
            self.groups.setdefault(key, {}).setdefault(c["pool"], {})[c["rep"]] = c

    def get(self, section, threads, connections, held=0):
        return self.groups.get((section, threads, connections, held), {})

    def keys(self, section):
        return sorted(k for k in self.groups if k[0] == section)


def field(group, pool, name):
    """Median over repetitions of one field of one pool."""
    return med([c[name] for c in group.get(pool, {}).values()])


def ratio(group, pool, base, name="cycles_per_second", invert=False):
    """Median over repetitions of pool/base (base/pool with invert) inside each repetition."""
    values = []
    for rep, c in group.get(pool, {}).items():
        b = group.get(base, {}).get(rep)
        if b is None or not b[name] or not c[name]:
            continue
        values.append(b[name] / c[name] if invert else c[name] / b[name])
    return med(values)


def fmt(value, pattern="%.2f"):
    return pattern % value if value is not None else "n/a"


POOL_ORDER = ["pooled", "pooled_ping0", "persistent", "persistent_ping0", "textbook", "soci",
              "mysqlpp", "mutex_pair", "no_pool"]
POOL_LABEL = {
    "pooled": "PooledPool, defaults",
    "pooled_ping0": "PooledPool, ping = never",
    "persistent": "PersistentPool, defaults",
    "persistent_ping0": "PersistentPool, ping = never",
    "textbook": "textbook mutex+condvar pool",
    "soci": "soci connection_pool",
    "mysqlpp": "MySQL++ ConnectionPool (+gate)",
    "mutex_pair": "std::mutex lock+unlock pair",
    "no_pool": "no pool (scheduler floor)",
}


def ordered(pools):
    known = [p for p in POOL_ORDER if p in pools]
    return known + sorted(p for p in pools if p not in POOL_ORDER)


def single_section(cells):
    group = cells.get("single", 1, 8)
    if not group:
        return
    reps = max(len(v) for v in group.values())
    say("## One thread: ns per acquire+release (median of %d repetitions)" % reps)
    say()
    say("| pool | ns/cycle | in mutex pairs |")
    say("|---|---:|---:|")
    for pool in ordered(group):
        say("| %s | %s | %s |" % (POOL_LABEL.get(pool, pool), fmt(field(group, pool, "ns_per_cycle"),
                                                                  "%.1f"),
                                  fmt(ratio(group, pool, "mutex_pair", "ns_per_cycle"))))
    say()
    for pool, goal in (("pooled", 1.2), ("persistent", 0.5)):
        r = ratio(group, pool, "mutex_pair", "ns_per_cycle")
        if r is None:
            continue
        target("no-op, 1 thread: %s <= %.1f mutex pairs" % (POOL_LABEL[pool], goal),
               "%.2f (%.1f ns; mutex pair %.1f ns)" % (r, field(group, pool, "ns_per_cycle"),
                                                      field(group, "mutex_pair", "ns_per_cycle")),
               r <= goal)


def crowded_section(cells):
    keys = cells.keys("crowded")
    if not keys:
        return
    say("## Threads above connections (2 s windows, median of repetitions)")
    say()
    say("x textbook: cycles/s over the textbook pool's in the same repetition. Longest gap: the"
        " longest time one thread went between two cycles (median over repetitions of each"
        " repetition's longest). Smallest share: the fewest cycles any thread completed over its"
        " fair share (cycles / threads); median (worst) over repetitions. Switches: voluntary"
        " context switches per 1000 cycles (the process's getrusage).")
    say()
    say("| threads on conns | pool | M cycles/s | x textbook | longest gap (ms) | smallest share |"
        " switches/kcycle |")
    say("|---|---|---:|---:|---:|---:|---:|")
    for key in keys:
        _, threads, connections, _ = key
        group = cells.get("crowded", threads, connections)
        for pool in ordered(group):
            shares = [c["min_share"] for c in group[pool].values()]
            floor = pool == "no_pool"  # its throughput means nothing
            say("| %d on %d | %s | %s | %s | %s | %s (%s) | %s |" % (
                threads, connections, POOL_LABEL.get(pool, pool),
                "" if floor else fmt(field(group, pool, "cycles_per_second") / 1e6),
                "" if floor else fmt(ratio(group, pool, "textbook")),
                fmt(field(group, pool, "max_gap_us") / 1e3, "%.1f"),
                fmt(med(shares)), fmt(min(shares)),
                fmt(field(group, pool, "voluntary_switches") * 1e3, "%.1f")))
        name = "no-op, %d threads on %d connections" % (threads, connections)
        r = ratio(group, "pooled", "textbook")
        if r is not None:
            target("%s: PooledPool >= 1.5x textbook" % name, "%.2fx" % r, r >= 1.5)
        r = ratio(group, "pooled", "soci")
        if r is not None:
            target("%s: PooledPool >= soci" % name, "%.2fx" % r, r >= 1.0)
        mine = field(group, "pooled", "max_gap_us")
        theirs = field(group, "textbook", "max_gap_us")
        if mine is not None and theirs is not None:
            target("%s: PooledPool longest gap <= textbook's" % name,
                   "%.1f ms vs %.1f ms" % (mine / 1e3, theirs / 1e3), mine <= theirs)
        shares = [c["min_share"] for c in group.get("pooled", {}).values()]
        if shares:
            floor = field(group, "no_pool", "min_share")
            target("%s: PooledPool no starvation (every thread >= 0.5 fair share in 2 s)" % name,
                   "smallest share %.2f (worst repetition %.2f; scheduler floor %s)"
                   % (med(shares), min(shares), fmt(floor)), med(shares) >= 0.5)
    say()


def curve_section(cells, results):
    keys = [k for k in cells.keys("curve") if k[2] == 8]
    if not keys:
        return
    with_floor = ordered({p for k in keys for p in cells.get(*k)})
    pools = [p for p in with_floor if p != "no_pool"]
    say("## Oversubscribed curve: M cycles/s against threads, 8 connections (median)")
    say()
    say("| threads | " + " | ".join(POOL_LABEL.get(p, p) for p in pools) + " |")
    say("|---:|" + "---:|" * len(pools))
    with open(os.path.join(results, "curve.dat"), "w", encoding="utf-8") as f:
        f.write("threads " + " ".join(pools) + "\n")
        for key in keys:
            group = cells.get(*key)
            values = [field(group, p, "cycles_per_second") for p in pools]
            say("| %d | %s |" % (key[1], " | ".join(fmt(v / 1e6 if v else None) for v in values)))
            f.write("%d %s\n" % (key[1], " ".join("%.4f" % (v / 1e6) if v else "NaN"
                                                    for v in values)))
    say()
    say("Smallest share per thread (median over repetitions) on the same cells:")
    say()
    say("| threads | " + " | ".join(POOL_LABEL.get(p, p) for p in with_floor) + " |")
    say("|---:|" + "---:|" * len(with_floor))
    for key in keys:
        group = cells.get(*key)
        say("| %d | %s |" % (key[1], " | ".join(fmt(field(group, p, "min_share"))
                                               for p in with_floor)))
    say()
    base = cells.get("curve", 1, 8)
    if "pooled" in base:
        worst = max(((field(cells.get(*k), "pooled", "ns_per_cycle") /
                      field(base, "pooled", "ns_per_cycle")), k[1]) for k in keys)
        target("size: PooledPool ns/cycle from 1 to %d threads (8 connections) within 1.5x of "
               "1 thread" % keys[-1][1], "worst %.2fx (at %d threads)" % worst, worst[0] <= 1.5)


def connections_section(cells):
    keys = cells.keys("connections")
    if not keys:
        return
    pools = ordered({p for k in keys for p in cells.get(*k)})
    say("## Pool size: ns per cycle, 8 threads on the 4 free connections of a pool of N "
        "(N - 4 held)")
    say()
    say("| connections | " + " | ".join(POOL_LABEL.get(p, p) for p in pools) + " |")
    say("|---:|" + "---:|" * len(pools))
    for key in keys:
        group = cells.get(*key)
        say("| %d | %s |" % (key[2], " | ".join(fmt(field(group, p, "ns_per_cycle"), "%.1f")
                                               for p in pools)))
    say()
    base = cells.get(*keys[0])
    if "pooled" in base:
        worst = max((field(cells.get(*k), "pooled", "ns_per_cycle") /
                     field(base, "pooled", "ns_per_cycle"), k[2]) for k in keys)
        target("size: PooledPool ns/cycle from %d to %d connections within 1.5x"
               % (keys[0][2], keys[-1][2]),
               "worst %.2fx (at %d connections)" % worst, worst[0] <= 1.5)


def enough_section(cells):
    keys = cells.keys("enough")
    if not keys:
        return
    pools = ordered({p for k in keys for p in cells.get(*k)})
    say("## A connection per thread: ns per cycle (wall, all threads) and x textbook")
    say()
    say("| threads | " + " | ".join(POOL_LABEL.get(p, p) for p in pools) + " |")
    say("|---:|" + "---:|" * len(pools))
    for key in keys:
        group = cells.get(*key)
        say("| %d | %s |" % (key[1], " | ".join(
            "%s (%sx)" % (fmt(field(group, p, "ns_per_cycle"), "%.1f"),
                          fmt(ratio(group, p, "textbook"), "%.1f")) for p in pools)))
        if key[1] >= 8 and "pooled" in group:
            r = ratio(group, "pooled", "textbook")
            target("no-op, %d threads, a connection each: PooledPool >= 3x textbook" % key[1],
                   "%.1fx" % r, r >= 3.0)
    say()


def investigate_section(cells):
    keys = cells.keys("investigate")
    for key in keys:
        group = cells.get(*key)
        say("## Investigation: %d threads on %d connections, PooledPool variants" % key[1:3])
        say()
        say("| pool | per repetition: M cycles/s (voluntary switches/kcycle) | median x textbook |"
            " smallest share | longest gap (ms) |")
        say("|---|---|---:|---:|---:|")
        for pool in ordered(group):
            reps = [group[pool][r] for r in sorted(group[pool])]
            say("| %s | %s | %s | %s | %s |" % (pool, ", ".join(
                "%.1f (%.1f)" % (c["cycles_per_second"] / 1e6, c["voluntary_switches"] * 1e3)
                for c in reps), fmt(ratio(group, pool, "textbook")),
                fmt(field(group, pool, "min_share")),
                fmt(field(group, pool, "max_gap_us") / 1e3, "%.0f")))
        say()


def primitives_section(data):
    say("## Cost of the primitives (median of repetitions)")
    say()
    say("| primitive | ns | what |")
    say("|---|---:|---|")
    for name, row in data.items():
        say("| %s | %.1f | %s |" % (name, row["ns"], row["what"]))
    say()


# --- server -----------------------------------------------------------------------------------

SERVER_ORDER = ["dedicated", "pooled_defaults", "pooled_safety", "persistent", "textbook_pool",
                "soci_pool", "mysqlpp_pool", "soci_native", "global_mutex",
                "connect_per_request"]
PEERS = ["soci_pool", "mysqlpp_pool", "soci_native"]


def server_section(server, results):
    med_rows = {(m["variant"], m["threads"]): m for m in server["median"]}
    threads_list = sorted({k[1] for k in med_rows})
    variants = [v for v in SERVER_ORDER if any((v, n) in med_rows for n in threads_list)]
    variants += sorted({k[0] for k in med_rows} - set(variants))
    say("## Real server: requests/s (median of %d rounds, %.1f s each) and ratio to dedicated"
        % (server["rounds"], server["seconds_per_run"]))
    say()
    say("| variant | " + " | ".join("%d thr req/s | ratio" % n for n in threads_list) + " |")
    say("|---|" + "---:|---:|" * len(threads_list))
    for v in variants:
        cells = []
        for n in threads_list:
            m = med_rows.get((v, n))
            cells.append("%.0f | %.3f" % (m["requests_per_second"], m["ratio"]) if m else " | ")
        say("| %s | %s |" % (v, " | ".join(cells)))
    say()
    # Per-round samples, for ratios between variants inside one round.
    rounds = {}
    csv_path = os.path.join(results, "server_throughput.csv")
    if os.path.exists(csv_path):
        with open(csv_path, encoding="utf-8") as f:
            for row in csv.DictReader(f):
                rounds.setdefault((int(row["round"]), int(row["threads"])), {})[row["variant"]] = \
                    float(row["requests_per_second"])
    for v in ("pooled_defaults", "pooled_safety"):
        for n in threads_list:
            if n > 8 or (v, n) not in med_rows:
                continue
            r = med_rows[(v, n)]["ratio"]
            target("server, %d thread%s: %s >= 0.97x dedicated" % (n, "s" if n > 1 else "", v),
                   "%.3f" % r, r >= 0.97)
        for n in threads_list:
            if n <= 8:
                continue
            values, best_names = [], []
            for (rnd, threads), by_variant in sorted(rounds.items()):
                peers = {p: by_variant[p] for p in PEERS if p in by_variant}
                if threads != n or v not in by_variant or not peers:
                    continue
                best = max(peers, key=peers.get)
                values.append(by_variant[v] / peers[best])
                best_names.append(best)
            if values:
                r = med(values)
                target("server, %d threads: %s >= the best peer pool" % (n, v),
                       "%.3fx the best peer of each round (best: %s)"
                       % (r, ", ".join(sorted(set(best_names)))), r >= 1.0)
    for n in threads_list:
        a, b = med_rows.get(("pooled_defaults", n)), med_rows.get(("connect_per_request", n))
        if a and b:
            r = a["ratio"] / max(b["ratio"], 1e-9)
            target("server, %d thread%s: pooled_defaults >= 3.5x connect-per-request"
                   % (n, "s" if n > 1 else ""),
                   "%.1fx" % r, r >= 3.5)
    say("## Server commands per clean acquire/release cycle (SHOW GLOBAL STATUS deltas)")
    say()
    keys = ["Questions", "Com_admin_commands", "Com_stmt_execute", "Com_rollback",
            "Bytes_received"]
    say("| pool | cycles | " + " | ".join(keys) + " |")
    say("|---|---:|" + "---:|" * len(keys))
    for rt in server["round_trips"]:
        say("| %s | %d | %s |" % (rt["pool"], rt["cycles"],
                                  " | ".join("%.4f" % rt.get(k, 0) for k in keys)))
        if rt["pool"].startswith("control"):
            continue
        traffic = rt.get("Questions", 0) + rt.get("Com_admin_commands", 0) + rt.get(
            "Bytes_received", 0)
        target("zero packets per clean cycle: %s" % rt["pool"],
               "%.4f commands, %.4f bytes received per cycle"
               % (rt.get("Questions", 0) + rt.get("Com_admin_commands", 0),
                  rt.get("Bytes_received", 0)),
               traffic * rt["cycles"] < 1)
    say()
    if server.get("errors"):
        say("Errors during the runs: %d (first: %s)" % (server["errors"], server["first_error"]))
        say()
    with open(os.path.join(results, "throughput.dat"), "w", encoding="utf-8") as f:
        f.write("threads " + " ".join(variants) + "\n")
        for n in threads_list:
            f.write("%d %s\n" % (n, " ".join(
                "%.1f" % med_rows[(v, n)]["requests_per_second"] if (v, n) in med_rows else "NaN"
                for v in variants)))


def memory_section(memory):
    say("## Memory")
    say()
    say("| measure | value |")
    say("|---|---:|")
    for key, value in memory.items():
        say("| %s | %.1f |" % (key, value))
    say()
    for prefix, what in (("pooled", "10M PooledPool cycles"),
                         ("persistent", "30k PersistentPool threads")):
        delta = memory["%s_rss_delta_kib" % prefix]
        target("flat RSS over %s" % what,
               "%.1f -> %.1f MiB (%+.0f KiB)" % (memory["%s_rss_before_mib" % prefix],
                                                 memory["%s_rss_after_mib" % prefix], delta),
               delta < 1024)


def main():
    results = sys.argv[1] if len(sys.argv) > 1 else "build/bench-results"
    overhead = load(os.path.join(results, "pool_overhead.json"))
    primitives = load(os.path.join(results, "primitives.json"))
    server = load(os.path.join(results, "server_throughput.json"))
    memory = load(os.path.join(results, "pool_memory.json"))

    if overhead:
        if overhead.get("peers_missing"):
            say("Peers left out: " + "; ".join(overhead["peers_missing"]))
            say()
        cells = Cells(overhead)
        single_section(cells)
        crowded_section(cells)
        curve_section(cells, results)
        connections_section(cells)
        enough_section(cells)
        investigate_section(cells)
    if primitives:
        primitives_section(primitives)
    if server:
        server_section(server, results)
    if memory:
        memory_section(memory)

    say("## Targets")
    say()
    say("| target | measured | |")
    say("|---|---|---|")
    for name, measured, ok in targets:
        say("| %s | %s | %s |" % (name, measured, "met" if ok else "MISSED"))
    say()
    say("%d of %d targets met" % (sum(1 for t in targets if t[2]), len(targets)))
    with open(os.path.join(results, "summary.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(out_lines) + "\n")


if __name__ == "__main__":
    main()
