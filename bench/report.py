#!/usr/bin/env python3
"""Turns the JSON lines bench/run.sh gathers into markdown tables (printed)
and, for the fleet, the growth plot (gnuplot, PNG).

    report.py PART RESULTS.jsonl OUTDIR
"""
import json
import os
import statistics
import subprocess
import sys


def lines(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip().startswith("{")]


def ms(x):
    return f"{x:.2f} ms"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


def restart(items, outdir):
    rows = [[i["system"], i["figure"].replace("_", " "), i["n"], ms(i["median_ms"]),
             ms(i["p90_ms"]), ms(i["p99_ms"])] for i in items if "median_ms" in i]
    print("## Restart latency after kill -9\n")
    print(table(["system", "figure", "n", "median", "p90", "p99"], rows))
    for i in items:
        if i["figure"] == "first_ping_answered":
            print(f"\n{i['system']}: the supervisor's first ping after a restart"
                  f" (timeout 0.1 s) was answered for {i['first_ping']} of"
                  f" {i['restarts']} restarts.")
    print()


def rtt(items, outdir):
    rows = []
    for i in items:
        if i["figure"] == "control_rtt":
            rows.append([i["label"], i["n"], ms(i["median_ms"]), ms(i["p90_ms"]),
                         ms(i["p99_ms"]), f"{i['worker_cpu']:.2f} %",
                         f"{i['broker_cpu']:.2f} %"])
    print("## Control round trip (ping -> pong)\n")
    print("Idle CPU over 10 s before the pings, in % of one core: the worker, "
          "and the broker process serving it alone.\n")
    print(table(["broker, fetch wait", "n", "median", "p90", "p99",
                 "worker idle CPU", "broker idle CPU"], rows))
    print()


def fleet(items, outdir):
    base = [i["branch_rss_kb"] for i in items if i["instances"] == 0]
    base_kb = statistics.median(base) if base else 0
    sizes = sorted({i["instances"] for i in items if i["instances"] > 0})
    rows, dat = [], []
    for n in sizes:
        its = [i for i in items if i["instances"] == n]
        round_ms = statistics.median(i["round_ms"] for i in its)
        msgs = statistics.median(i["commands"] + i["replies"] for i in its)
        cmds = statistics.median(i["commands"] for i in its)
        rss = statistics.median(i["branch_rss_kb"] for i in its)
        per = (rss - base_kb) / n
        rows.append([n, f"{round_ms:.1f} ms", f"{msgs:.0f}", f"{cmds:.0f}",
                     f"{msgs - n:+.0f}", f"{rss / 1024:.1f} MiB",
                     f"{per:.1f} KB"])
        dat.append((n, round_ms, msgs, rss / 1024, per))
    print("## Verification round against fleet size\n")
    print(f"Branch with no instances: {base_kb / 1024:.1f} MiB resident. "
          "Medians of rounds 3-5 (round 1 starts the fleet; round 2 still meets instances finishing their start).\n")
    print(table(["instances", "round", "messages", "of them commands",
                 "messages - N", "branch RSS", "RSS per instance"], rows))
    print()
    if not dat:
        return
    path = os.path.join(outdir, "growth.dat")
    with open(path, "w") as f:
        f.write("# instances round_ms messages rss_mib kb_per_instance\n")
        for d in dat:
            f.write(" ".join(str(x) for x in d) + "\n")
    png = os.path.join(outdir, "growth.png")
    script = f"""
set terminal pngcairo size 1200,420 font ",10"
set output "{png}"
set multiplot layout 1,3 title "cyme branch: one verification round against fleet size (real Kafka broker)"
set logscale xy
set grid
set key top left
set xlabel "instances"
set ylabel "ms"
set title "round time"
plot "{path}" using 1:2 with linespoints lw 2 pt 7 title "round", \\
     "{path}" using 1:($1*0.2) with lines dt 2 title "0.2 ms x N (linear)"
set ylabel "messages"
set title "control messages per round"
plot "{path}" using 1:3 with linespoints lw 2 pt 7 title "commands + replies", \\
     "{path}" using 1:($1+1) with lines dt 2 title "N + 1"
unset logscale y
set ylabel "KB"
set title "branch memory per instance"
set yrange [0:*]
plot "{path}" using 1:5 with linespoints lw 2 pt 7 title "RSS per instance", \\
     20 with lines dt 2 title "20 KB target"
unset multiplot
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    print("Plot: `bench/results/growth.png`\n")


def idle(items, outdir):
    rows = [[i["label"], f"{i['seconds']:.0f} s", f"{i['cpu_seconds']:.2f} s",
             f"{i['percent_of_core']:.2f} %", f"{i['rss_kb'] / 1024:.1f} MiB"]
            for i in items]
    print("## Idle cost of a branch\n")
    print(table(["setup", "measured", "CPU time", "CPU (% of one core)", "RSS"],
                rows))
    print()


def throughput(items, outdir):
    rows = [[i["label"], i["tasks"], f"{i['span_s']:.2f} s",
             f"{i['tasks_per_s']:.0f}"] for i in items]
    print("## Worker throughput (no-op tasks)\n")
    print(table(["reader", "tasks", "time", "tasks/s"], rows))
    print()


def http(items, outdir):
    rows = []
    for i in items:
        if "median_ms" in i:
            rows.append([i["case"], f"{i['median_ms']:.2f} ms",
                         f"{i['p90_ms']:.2f} ms", f"{i['max_ms']:.2f} ms",
                         i["failed"]])
        else:
            rows.append([i["case"], "-", "-", "-",
                         f"{i['requests_per_s']:.0f} requests/s"])
    print("## HTTP under misbehaving clients\n")
    print(table(["case", "median", "p90", "max", "failed / rate"], rows))
    print()


def wire(items, outdir):
    rows = [[i["what"], f"{i['bytes']:,}", f"{i['direct_us']:.2f} µs",
             f"{i['full_us']:.2f} µs", f"{i['ratio']:.1f}"] for i in items]
    print("## The wire codecs\n")
    print("Median of 11 runs, per message.\n")
    print(table(["what", "bytes", "direct", "full JSON", "full / direct"], rows))
    print()


def explore(items, outdir):
    rows = [[i["seeds"], i["steps"], f"{i['simulated_hours']:.0f} h",
             f"{i['cpu_seconds']:.2f} s",
             f"{i['simulated_hours_per_cpu_second']:.1f}"] for i in items]
    rates = sorted(i["simulated_hours_per_cpu_second"] for i in items)
    print("## The explorer: simulated time per CPU second\n")
    print(table(["seeds", "steps", "simulated", "CPU", "simulated h / CPU s"],
                rows))
    if rates:
        print(f"\nMedian: {rates[len(rates) // 2]:.1f} simulated hours per "
              "CPU second.")
    print()


def tasks(items, outdir):
    kcat = {i["broker"]: i["tasks_per_s"] for i in items if i["figure"] == "kcat"}
    rows = []
    for i in items:
        if i["figure"] == "kcat":
            what = "kcat -P, same messages"
        elif i["figure"] == "acked":
            what = (f"the branch's producer, {i['clients']} threads, "
                    "one task each until acknowledged (no HTTP)")
        elif i["mode"] == "single-wrk":
            what = f"HTTP, wrk, {i['clients']} connections, one task per request"
        else:
            what = (f"HTTP, {i['clients']} clients, "
                    + ("one task per request" if i["mode"] == "single"
                       else f"batches of {i['batch']}"))
        base = kcat.get(i["broker"])
        ratio = f"{i['tasks_per_s'] / base:.2f}" if base else "-"
        rows.append([i["broker"], what, i["tasks"], f"{i['seconds']:.2f} s",
                     f"{i['tasks_per_s']:,.0f}", ratio])
    print("## Task submission\n")
    print(table(["broker", "how", "tasks", "time", "tasks/s", "/ kcat"], rows))
    print()


def results(items, outdir):
    rows = []
    for broker in sorted({i["broker"] for i in items}):
        runs = [i for i in items if i["broker"] == broker]
        rows.append([broker, runs[0]["waiters"], len(runs),
                     ms(statistics.median(i["write_ms"] for i in runs)),
                     ms(statistics.median(i["median_ms"] for i in runs)),
                     ms(statistics.median(i["p90_ms"] for i in runs)),
                     ms(statistics.median(i["all_ms"] for i in runs)),
                     ms(max(i["all_ms"] for i in runs))])
    print("## A burst of results to waiting clients\n")
    print(table(["broker", "waiters", "runs", "results written", "median waiter",
                 "p90 waiter", "last waiter (median of runs)",
                 "last waiter (worst run)"], rows))
    print()


def cluster(items, outdir):
    rows, dat = [], []
    for i in sorted(items, key=lambda x: (x["instances"], x["branches"])):
        every = [r for branch in i["round_ms"] for r in branch]
        placed = list(i["placed"].values())
        # Every branch reads every announcement: deliveries per second are
        # the announcements times the branches.
        delivered = i["presence_per_s"] * i["branches"]
        rows.append([i["branches"], i["per_branch"], i["instances"],
                     f"{statistics.median(every):.0f} ms", f"{max(every):.0f} ms",
                     f"{statistics.median(i['list_ms']):.0f} ms",
                     f"{min(placed)} to {max(placed)} of {sum(placed)}",
                     f"{i['presence_per_s']:.1f}", f"{delivered:.1f}",
                     f"{i['branch_rss_kb'] / 1024:.0f} MiB",
                     f"{max(i['first_round_ms']) / 1000:.1f} s",
                     i["unresponsive_at_start"]])
        dat.append((i["instances"], statistics.median(every), max(every),
                    statistics.median(i["list_ms"]), i["branches"],
                    i["presence_per_s"], delivered))
    print("## A cluster of branches on one broker\n")
    print("Each branch supervises its instances through the simulated driver "
          "(no processes; cyme-fleet-sim --any answers). The first three rounds "
          "of every branch that began after every branch's first round ended; the first round starts every instance (\"starts given up\": "
          "instances reported as not responding to their start pings); "
          "the cluster-wide listing through branch 1, three times; new "
          "instances created through branch 1, 10 per branch; presence "
          "announcements over 20 s.\n")
    print(table(["branches", "instances each", "instances", "round (median)",
                 "round (worst)", "cluster-wide listing (median)",
                 "placed per branch", "announcements/s", "deliveries/s",
                 "branch 1 RSS", "first round (slowest branch)",
                 "starts given up"], rows))
    print()
    if not dat:
        return
    path = os.path.join(outdir, "cluster.dat")
    with open(path, "w") as f:
        f.write("# instances round_median_ms round_worst_ms list_ms branches "
                "announcements_per_s deliveries_per_s\n")
        for d in dat:
            f.write(" ".join(str(x) for x in d) + "\n")
    png = os.path.join(outdir, "cluster.png")
    script = f"""
set terminal pngcairo size 1200,420 font ",10"
set output "{png}"
set multiplot layout 1,3 title "cyme cluster: branches of instances on one Kafka broker (simulated driver)"
set logscale x
set grid
set key top left
set xlabel "instances in the cluster"
set ylabel "ms"
set title "each branch's round"
plot "{path}" using 1:2 with linespoints lw 2 pt 7 title "median", \\
     "{path}" using 1:3 with linespoints lw 2 pt 5 title "worst", \\
     500 with lines dt 2 title "500 ms target"
set title "cluster-wide listing"
plot "{path}" using 1:4 with linespoints lw 2 pt 7 title "GET /<app>/instances/", \\
     2000 with lines dt 2 title "2 s target"
unset logscale x
set xlabel "branches"
set ylabel "messages/s"
set title "presence traffic"
plot "{path}" using 5:6 with linespoints lw 2 pt 7 title "announcements", \\
     "{path}" using 5:7 with linespoints lw 2 pt 5 title "deliveries (every branch reads all)"
unset multiplot
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    print("Plot: `bench/results/cluster.png`\n")


def recovery(items, outdir):
    rows = [[i["run"], "yes" if i["suspected"] else "no",
             f"{i['suspecting_ms']:.0f} ms",
             i.get("suspecting_commands", ""),
             i.get("suspecting_unanswered", ""),
             f"{i['back_ms']:.0f} ms", f"{i['back_verdicts_ms']:.0f} ms",
             f"{i['back_settled']} of {i['instances']}",
             f"{i['steady_ms']:.0f} ms"] for i in items]
    rows.append(["median", "",
                 f"{statistics.median(i['suspecting_ms'] for i in items):.0f} ms",
                 "", "",
                 f"{statistics.median(i['back_ms'] for i in items):.0f} ms",
                 f"{statistics.median(i['back_verdicts_ms'] for i in items):.0f} ms",
                 "",
                 f"{statistics.median(i['steady_ms'] for i in items):.0f} ms"])
    print("## The round that finds a lagging bus back\n")
    print("One branch of 10,000 (simulated driver); its simulator stopped for "
          "a round, then continued.\n")
    print(table(["run", "bus suspected", "round without answers",
                 "its control commands", "their silent destinations",
                 "round that finds the bus back", "its verdicts",
                 "settled by the probe", "steady round after it"], rows))
    print()


def presence(items, outdir):
    rows = [[i["branches"],
             f"{i['cluster_rate']:g} a second" if i["cluster_rate"] > 0 else "none",
             f"{i['every_ms'] / 1000:g} s", f"{i['read_per_branch_per_s']:.2f}",
             f"{i['deliveries_per_s']:.1f}",
             f"{i['views_missing_a_branch']} of {i['views_sampled']}",
             f"{i['cpu_ms_per_branch_per_s']:.2f} ms",
             f"{i['converge_s']:.1f} s"] for i in items]
    print("## Presence traffic against the branches\n")
    print("N branches' presence on one broker, at the default 2 s interval, "
          "with the cluster's rate (the default) and without it.\n")
    print(table(["branches", "cluster rate", "each announces every",
                 "read by each branch a second",
                 "deliveries a second, all branches",
                 "views missing a live branch", "CPU per branch a second",
                 "all see all after"], rows))
    print()


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: report.py PART RESULTS.jsonl OUTDIR")
    part, path, outdir = sys.argv[1:]
    parts = {"restart": restart, "rtt": rtt, "fleet": fleet, "idle": idle,
             "throughput": throughput, "http": http, "explore": explore, "wire": wire, "tasks": tasks,
             "results": results, "cluster": cluster, "recovery": recovery,
             "presence": presence}
    if part not in parts:
        sys.exit(f"report.py: unknown part {part}")
    parts[part](lines(path), outdir)


if __name__ == "__main__":
    main()
