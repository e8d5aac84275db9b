#!/usr/bin/env python3
"""How late *any* generator must send on this machine: the CPU stalls a core suffers, and
the send lag they force on an ideal open-model generator.

A generator keeps its schedule only while it has a core. On a shared VM a vCPU is taken
away by the host for milliseconds at a time (steal time that the guest may not even
report), and a slot due during such a stall is sent late whatever the generator does;
the slots after it are late too, until the generator has caught up with its spare rate.
So a schedule kept at a high fraction of the machine's capacity needs a quiet core, and
this script says, for this machine, now, whether the issue-11 goal (send-lag p99 < 1 ms
at 0.8 x wrk's closed-loop rate) is within reach of any generator.

It does three things:

1. Measures stalls: a thread pinned to CPU (default 0, where benches/ceiling.sh puts the
   load tools) reads the monotonic clock in a tight loop for SECS seconds; every gap
   over 0.1 ms between two reads is time the thread did not run. It runs at nice -20
   (when allowed), so the guest's own tasks barely take its core: what is left is the
   host's doing (and interrupts), which no generator in the guest can avoid. A real
   generator also yields to the guest's tasks, so the ideal below is an upper bound.
2. Replays them against an ideal generator: one that sends each slot exactly when due,
   costs nothing but its sends, and sends at CAPACITY requests/s while it runs (wrk's
   closed-loop rate on the same server, taken as the cost of a send; given as --capacity
   or measured here with wrk against --url). Slot i is due at i / rate; it is sent at the
   first moment the generator is free and the core is not stalled. The p99 of (sent - due)
   over every slot is the least send-lag p99 a generator could report at that rate on
   this trace. With --server-cpu, the server's core is measured at the same time and
   the replay adds it: the server answers in order at CAPACITY on its stalling core, and
   a slot waits for a lane (--lanes requests in flight at most, one per HTTP/1.1
   connection) when every lane waits for the server.
3. With --windows N: runs wrk N times back to back for --window-secs each (pinned like
   the stall thread) and replays the same ideal generator, now as efficient as wrk *in
   each window*, at fractions of the median window: a window where wrk itself did less
   than the schedule asks leaves a backlog (slots behind / capacity = their send lag),
   which the next windows drain with what they have to spare. This counts the server's
   stalls and the machine's slower minutes too, at the windows' resolution (a lower
   bound again: what varies inside a window is averaged away).

  benches/stalls.py --capacity 120000                   (SECS=30 on CPU 0)
  benches/stalls.py --url http://127.0.0.1:3940/ --secs 20 --cpu 0
  benches/stalls.py --url http://127.0.0.1:3940/ --windows 40 --window-secs 2
  benches/stalls.py --capacity 120000 --server-cpu 1 --secs 10 --reach   (for ceiling.sh)

Prints the stalls (count, total, largest, share of the time) and, for each fraction of
the capacity, the ideal generator's send-lag p50 / p99 / max.
"""

import argparse
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import time

GAP_S = 0.0001  # a gap between two clock reads longer than this is a stall
LIMIT_S = 0.001  # "keeps the schedule": send-lag p99 under this (benches/ceiling.sh's rule)


def measure_stalls_on(secs, cpus):
    """The stalls of each of `cpus` over the same `secs`, measured side by side, each in a
    process of its own (pinned and reniced, which this process stays not)."""
    with multiprocessing.Pool(len(cpus)) as pool:
        return pool.starmap(measure_stalls, [(secs, cpu) for cpu in cpus])


def measure_stalls(secs, cpu):
    """(start, end) of every stall of a thread pinned to `cpu`, in seconds from the start."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    try:
        os.nice(-20)  # the guest's tasks get a tiny share (nice 0 weighs 1/87 of it)
    except OSError:
        pass  # not root: the guest's tasks count as stalls too (a stricter bound)
    clock = time.perf_counter
    stalls = []
    start = last = clock()
    end = start + secs
    while last < end:
        now = clock()
        if now - last > GAP_S:
            stalls.append((last - start, now - start))
        last = now
    return stalls


def windows_lags(rates, window_secs, rate, step=0.001):
    """Send lag (s) every `step` of a `rate`/s schedule through windows of `rates` capacity."""
    lags = []
    backlog = 0.0  # slots due and not sent
    for capacity in rates:
        for _ in range(int(window_secs / step)):
            backlog = max(0.0, backlog + (rate - capacity) * step)
            lags.append(backlog / capacity)
    return lags


def wrk_capacity(url, secs, cpu):
    """wrk's closed-loop requests/s against `url` (1 thread, 64 connections) on `cpu`."""
    if not shutil.which("wrk"):
        sys.exit("stalls.py: wrk not found (apt-get install wrk), or give --capacity")
    cmd = ["wrk", "-t1", "-c64", f"-d{secs:g}s", url]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu)] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 60).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        sys.exit(f"stalls.py: no rate from wrk:\n{out}")
    return float(match.group(1))


class Core:
    """A core's stalls, walked forward in time."""

    def __init__(self, stalls):
        self.stalls, self.j = stalls, 0

    def runs_at(self, t):
        """The first moment from `t` at which the core is not stalled (t never goes back)."""
        stalls = self.stalls
        while self.j < len(stalls) and stalls[self.j][1] <= t:
            self.j += 1
        if self.j < len(stalls) and stalls[self.j][0] <= t:
            return stalls[self.j][1]
        return t


def ideal_lags(stalls, secs, rate, capacity, server_stalls=None, lanes=None):
    """Send lag (s) of every slot of a `rate`/s schedule sent by the ideal generator.

    With `server_stalls`: the server answers in order at `capacity`/s on its own stalling
    core, and the generator has `lanes` requests in flight at most (one per connection,
    HTTP/1.1), so a slot whose lane is still waiting for the server is sent late."""
    cost = 1.0 / capacity
    generator = Core(stalls)
    server = Core(server_stalls) if server_stalls is not None else None
    answered = []  # when each request's answer is done (in order: the server is FIFO)
    lags = []
    free = 0.0  # when the generator can send next
    server_free = 0.0
    for i in range(int(secs * rate)):
        due = i / rate
        sent = max(due, free)
        if server is not None and i >= lanes:
            sent = max(sent, answered[i - lanes])
        sent = generator.runs_at(sent)
        lags.append(sent - due)
        free = sent + cost
        if server is not None:
            start = server.runs_at(max(sent, server_free))
            server_free = start + cost
            answered.append(server_free)
    return lags


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def kept(lags):
    return percentile(lags, 0.99) < LIMIT_S


def lag_figures(lags):
    """"p50 / p99 / max" in ms."""
    ms = 1e3
    return f"{percentile(lags, 0.5) * ms:.3f} / {percentile(lags, 0.99) * ms:.3f} / {max(lags) * ms:.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--secs", type=float, default=float(os.environ.get("SECS", 30)))
    parser.add_argument("--cpu", type=int, default=int(os.environ.get("CPU", 0)))
    parser.add_argument("--capacity", type=float, help="requests/s of a closed loop (else measured with wrk)")
    parser.add_argument("--url", default="http://127.0.0.1:3940/", help="server for wrk when --capacity is not given")
    parser.add_argument("--fractions", default="0.25 0.5 0.6 0.7 0.8")
    parser.add_argument("--windows", type=int, default=0, help="wrk windows to replay (0: none)")
    parser.add_argument("--window-secs", type=float, default=2.0)
    parser.add_argument("--run-secs", type=float, default=10.0, help="length of a try, for the spans")
    parser.add_argument("--server-cpu", type=int, help="also replay the server's stalls, measured on this CPU")
    parser.add_argument("--lanes", type=int, default=256, help="requests in flight at most (with --server-cpu)")
    parser.add_argument("--reach", action="store_true",
                        help="print only the highest of --fractions (tried in ascending order, up to the first "
                             "miss) at which the ideal generator keeps p99 < 1 ms with every stall measured; 0 if none")
    args = parser.parse_args()
    fractions = [float(f) for f in args.fractions.split()]

    if args.windows:
        rates = [wrk_capacity(args.url, args.window_secs, args.cpu) for _ in range(args.windows)]
        median = sorted(rates)[len(rates) // 2]
        print(f"wrk over {args.windows} windows of {args.window_secs:g} s on CPU {args.cpu}: min {min(rates):,.0f}, "
              f"median {median:,.0f}, max {max(rates):,.0f}/s; below 0.8 x median: "
              f"{sum(r < 0.8 * median for r in rates)} of {len(rates)}")
        print("  " + " ".join(f"{r / 1e3:.0f}k" for r in rates))
        per_run = max(1, round(args.run_secs / args.window_secs))
        print("ideal generator as efficient as wrk in every window: send lag p50 / p99 / max (ms) over all "
              f"windows; and of the {args.run_secs:g}-s spans (sliding by a window), how many it keeps at p99 < 1 ms")
        for fraction in fractions:
            lags = windows_lags(rates, args.window_secs, fraction * median)
            steps = len(lags) // len(rates)
            spans = [lags[i * steps:(i + per_run) * steps] for i in range(len(rates) - per_run + 1)]
            print(f"  {fraction:.2f} x median = {fraction * median:>9,.0f}/s: {lag_figures(lags)}; "
                  f"{args.run_secs:g}-s spans kept: {sum(map(kept, spans))} of {len(spans)}")

    capacity = args.capacity or wrk_capacity(args.url, 10, args.cpu)
    cpus = [args.cpu] if args.server_cpu is None else [args.cpu, args.server_cpu]
    stalls, server_stalls = (measure_stalls_on(args.secs, cpus) + [None])[:2]
    if args.reach:
        reach = 0.0
        for fraction in sorted(fractions):
            if not kept(ideal_lags(stalls, args.secs, fraction * capacity, capacity, server_stalls, args.lanes)):
                break
            reach = fraction
        print(f"{reach:g}")
        return
    describe(stalls, args.secs, args.cpu)
    if server_stalls is not None:
        describe(server_stalls, args.secs, args.server_cpu)
    print(f"ideal generator at capacity {capacity:,.0f}/s: send lag p50 / p99 / max (ms)")
    for fraction in fractions:
        rate = fraction * capacity
        replays = [(None, "its own core's stalls")]
        if server_stalls is not None:
            replays.append((server_stalls, f"and the server's, {args.lanes} lanes"))
        for server, label in replays:
            lags = ideal_lags(stalls, args.secs, rate, capacity, server, args.lanes)
            print(f"  {fraction:.2f} x capacity = {rate:>9,.0f}/s, {label}: {lag_figures(lags)}   "
                  f"{'within' if kept(lags) else 'beyond'} reach of p99 < 1 ms")


def describe(stalls, secs, cpu):
    ms = 1e3
    lengths = sorted(e - s for s, e in stalls)
    total = sum(lengths)
    print(f"stalls on CPU {cpu} over {secs:g} s (gaps > {GAP_S * 1e6:.0f} µs): {len(stalls)}, "
          f"{len(stalls) / secs:.1f}/s, total {total * ms:.1f} ms ({total / secs:.2%} of the time)")
    if lengths:
        print(f"  length p50 {percentile(lengths, 0.5) * ms:.2f} ms, p99 {percentile(lengths, 0.99) * ms:.2f} ms, "
              f"max {lengths[-1] * ms:.2f} ms; over 1 ms: {sum(1 for x in lengths if x > 1e-3)}, "
              f"over 4 ms: {sum(1 for x in lengths if x > 4e-3)}")


if __name__ == "__main__":
    main()
