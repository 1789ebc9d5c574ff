#!/usr/bin/env python3
"""Turns the benchmark outputs in a results directory into ratio tables and target checks.

    bench/report.py RESULTS_DIR

Reads pool_overhead.json (Google Benchmark, every repetition), server_throughput.json and
pool_memory.json; prints the tables, writes RESULTS_DIR/summary.md (the same text) and
RESULTS_DIR/throughput.dat (requests/s against threads, one column per variant, for gnuplot).
Exits 0 whether or not targets are met: missing a target is a result, not an error.
"""

import json
import os
import statistics
import sys

out_lines = []


def say(line=""):
    print(line)
    out_lines.append(line)


def load(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def overhead_table(data):
    """{(name, threads): {"ips": median items/s, "max_wait_us": max over repetitions, ...}}"""
    runs = {}
    for b in data["benchmarks"]:
        if b.get("run_type") != "iteration" or b.get("error_occurred"):
            continue
        name = b["run_name"].split("/real_time")[0]
        runs.setdefault((name, b["threads"]), []).append(b)
    table = {}
    for key, reps in runs.items():
        ips = [r["items_per_second"] for r in reps]
        row = {"ips": statistics.median(ips), "reps": len(reps), "ips_all": ips}
        if "max_wait_us" in reps[0]:
            row["max_wait_us"] = max(r["max_wait_us"] for r in reps)
            row["mean_wait_us"] = statistics.median(r["mean_wait_us"] for r in reps)
        table[key] = row
    return table


def verdict(ok):
    return "met" if ok else "MISSED"


def main():
    results = sys.argv[1] if len(sys.argv) > 1 else "build/bench-results"
    overhead = load(os.path.join(results, "pool_overhead.json"))
    server = load(os.path.join(results, "server_throughput.json"))
    memory = load(os.path.join(results, "pool_memory.json"))
    targets = []  # (target, measured, met)

    if overhead:
        t = overhead_table(overhead)
        ns = lambda key: 1e9 / t[key]["ips"]  # noqa: E731 (per-op wall time at 1 thread)
        say("## No-op connection: acquire+release (median of repetitions)")
        say()
        say("| benchmark | threads | ns/op (wall, all threads) | M ops/s | max wait (us) |")
        say("|---|---:|---:|---:|---:|")
        for (name, threads), row in sorted(t.items()):
            wait = "%.0f" % row["max_wait_us"] if "max_wait_us" in row else ""
            say("| %s | %d | %.1f | %.2f | %s |" % (name, threads, 1e9 / row["ips"],
                                                     row["ips"] / 1e6, wait))
        say()
        mutex = ns(("mutex_pair", 1))
        say("## Ratios")
        say()
        say("| ratio | value | target |")
        say("|---|---:|---|")
        for variant in ("pooled_ping1/conns:64", "pooled_ping0/conns:64"):
            r = ns((variant, 1)) / mutex
            say("| %s 1 thread / mutex pair | %.2f | <= 1 |" % (variant, r))
            targets.append(("no-op 1 thread: %s <= 1 mutex pair" % variant,
                            "%.1f ns = %.2fx mutex pair (%.1f ns)" % (ns((variant, 1)), r, mutex),
                            r <= 1.0))
        for variant in ("persistent_ping1", "persistent_ping0"):
            r = ns((variant, 1)) / mutex
            say("| %s 1 thread / mutex pair | %.2f | < 0.25 |" % (variant, r))
            targets.append(("no-op 1 thread: %s < 1/4 mutex pair" % variant,
                            "%.1f ns = %.2fx mutex pair" % (ns((variant, 1)), r), r < 0.25))
        for conns, goal in (("64", 3.0), ("4", 1.0)):
            for threads in (8, 64):
                for ping in ("ping1", "ping0"):
                    pooled = t.get(("pooled_%s/conns:%s" % (ping, conns), threads))
                    textbook = t.get(("textbook/conns:%s" % conns, threads))
                    if not pooled or not textbook:
                        continue
                    r = pooled["ips"] / textbook["ips"]
                    say("| pooled_%s/conns:%s / textbook, %d threads (throughput) | %.2f | >= %g |"
                        % (ping, conns, threads, r, goal))
                    wait = ""
                    if "max_wait_us" in pooled:
                        wait = "; longest wait %.0f us (textbook %.0f us)" % (
                            pooled["max_wait_us"], textbook["max_wait_us"])
                    targets.append(("no-op %d threads, %s connections: pooled_%s >= %gx textbook"
                                    % (threads, conns, ping, goal),
                                    "%.2fx (%.2f vs %.2f M ops/s)%s" % (
                                        r, pooled["ips"] / 1e6, textbook["ips"] / 1e6, wait),
                                    r >= goal))
        if ("steady_clock_now", 1) in t:
            say("| steady_clock::now() / mutex pair | %.2f | (context) |"
                % (ns(("steady_clock_now", 1)) / mutex))
        say()

    if server:
        med = {(m["variant"], m["threads"]): m for m in server["median"]}
        threads_list = sorted({k[1] for k in med})
        variants = ["dedicated", "pooled_defaults", "pooled_safety", "persistent",
                    "global_mutex", "connect_per_request"]
        say("## Real server: requests/s (median of %d rounds, %.1f s each) and ratio to dedicated"
            % (server["rounds"], server["seconds_per_run"]))
        say()
        say("| variant | " + " | ".join("%d thr req/s | ratio" % n for n in threads_list) + " |")
        say("|---|" + "---:|---:|" * len(threads_list))
        for v in variants:
            cells = []
            for n in threads_list:
                m = med.get((v, n))
                cells.append("%.0f | %.3f" % (m["requests_per_second"], m["ratio"]) if m else "|")
            say("| %s | %s |" % (v, " | ".join(cells)))
        say()
        for v, goal in (("pooled_defaults", 0.97), ("pooled_safety", 0.95), ("persistent", 0.98)):
            for n in threads_list:
                r = med[(v, n)]["ratio"]
                targets.append(("server %d threads: %s >= %.2fx dedicated" % (n, v, goal),
                                "%.3f" % r, r >= goal))
        for n in threads_list:
            r = med[("pooled_defaults", n)]["ratio"] / max(med[("connect_per_request", n)]["ratio"],
                                                           1e-9)
            targets.append(("server %d threads: pooled_defaults >= 3.5x connect-per-request" % n,
                            "%.1fx" % r, r >= 3.5))
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
            targets.append(("zero packets per clean cycle: %s" % rt["pool"],
                            "%.4f commands, %.4f bytes received per cycle"
                            % (rt.get("Questions", 0) + rt.get("Com_admin_commands", 0),
                               rt.get("Bytes_received", 0)),
                            traffic * rt["cycles"] < 1))
        say()
        if server.get("errors"):
            say("Errors during the runs: %d (first: %s)" % (server["errors"],
                                                            server["first_error"]))
            say()
        with open(os.path.join(results, "throughput.dat"), "w", encoding="utf-8") as f:
            f.write("threads " + " ".join(variants) + "\n")
            for n in threads_list:
                f.write("%d %s\n" % (n, " ".join("%.1f" % med[(v, n)]["requests_per_second"]
                                                  for v in variants)))

    if memory:
        say("## Memory")
        say()
        say("| measure | value |")
        say("|---|---:|")
        for key, value in memory.items():
            say("| %s | %.1f |" % (key, value))
        say()
        for prefix, what in (("pooled", "10M PooledPool cycles"),
                             ("persistent", "100k PersistentPool threads")):
            delta = memory["%s_rss_delta_kib" % prefix]
            targets.append(("flat RSS over %s" % what,
                            "%.1f -> %.1f MiB (%+.0f KiB)" % (memory["%s_rss_before_mib" % prefix],
                                                              memory["%s_rss_after_mib" % prefix],
                                                              delta),
                            delta < 1024))

    say("## Targets")
    say()
    say("| target | measured | |")
    say("|---|---|---|")
    for name, measured, ok in targets:
        say("| %s | %s | %s |" % (name, measured, verdict(ok)))
    say()
    met = sum(1 for t in targets if t[2])
    say("%d of %d targets met" % (met, len(targets)))
    with open(os.path.join(results, "summary.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(out_lines) + "\n")


if __name__ == "__main__":
    main()
