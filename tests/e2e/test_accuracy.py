"""What the weights add up to: cpu mode to the CPU time the threads used,
wall mode to the real split of a thread's time between its phases."""
import os

from harness import WORKLOADS, check, wait_until


def overloaded():
    return os.getloadavg()[0] > 2 * (os.cpu_count() or 1)


def test_cpu_mode_weight_is_the_threads_cpu_time(ctx):
    """Bursts of 2 ms every 20 ms at 1 kHz for 8 s: most ticks find the
    thread asleep, and a late sampler misses whole bursts; the weights must
    still add up to time.thread_time() over the run, within 3%.  (What the
    thread burns after the last tick that saw it run is never charged: a
    few bursts at most, which a short run would make a large share.)"""
    ctx.start_daemon()
    ctx.ctl("start", "--rate", "1000", "--mode", "cpu")
    go = os.path.join(ctx.tmp, "go")
    p = ctx.run_agent([os.path.join(WORKLOADS, "bursts.py"), "2", "18", "8",
                       go])
    wait_until(lambda: any(a["pid"] == p.pid and a["connected"] and
                           a["profiling"]
                           for a in ctx.ctl_json("status")["agents"]),
               30, "the agent to sample")
    open(go, "w").close()
    check(p.wait(60) == 0, "workload: %s" % ctx.output(p))
    cpu_us = int(ctx.output(p).split("cpu_ns=")[1].split()[0]) / 1000.0
    ctx.wait_departed(p.pid)
    rows = ctx.ctl_json("show", "--pid", p.pid, "--thread", "bursts",
                        "--top", "0")["functions"]
    weight = sum(f["self_us"] for f in rows)
    burn = sum(f["self_us"] for f in rows if f["function"] == "burn")
    print("  cpu weight %.1f ms (burn %.1f ms) for %.1f ms of thread CPU"
          % (weight / 1000, burn / 1000, cpu_us / 1000))
    check(abs(weight - cpu_us) <= 0.03 * cpu_us, "cpu-mode weight %.1f ms, "
          "the thread used %.1f ms of CPU" % (weight / 1000, cpu_us / 1000))
    check(burn >= 0.9 * weight, "burn() has %.1f of %.1f ms"
          % (burn / 1000, weight / 1000))


def test_wall_mode_splits_phases_as_they_ran(ctx):
    """20 ms of CPU, 20 ms of sleep, 5 s: the time-weighted split within 1
    point of the truth (2 on an overloaded machine)."""
    ctx.start_daemon()
    ctx.ctl("start", "--rate", "1000", "--mode", "wall")
    p = ctx.run_agent([os.path.join(WORKLOADS, "mixed.py"), "--seconds",
                       "5", "--slice", "20"])
    check(p.wait(60) == 0, "workload: %s" % ctx.output(p))
    truth = float(ctx.output(p).split("cpu_share=")[1].split()[0])
    ctx.wait_departed(p.pid)
    rows = {f["function"]: f for f in ctx.ctl_json(
        "show", "--pid", p.pid, "--top", "0")["functions"]}
    c = rows.get("cpu_part", {}).get("self_us", 0)
    s = rows.get("sleep_part", {}).get("total_us", 0)
    check(c + s > 0, "no samples in either phase: %r" % sorted(rows))
    got = 100.0 * c / (c + s)
    tol = 2.0 if overloaded() else 1.0
    print("  cpu_part %.2f%% of the weight, true %.2f%%" % (got, truth))
    check(abs(got - truth) <= tol, "wall mode: cpu_part %.2f%% of the "
          "weight, true %.2f%% (tolerance %.1f)" % (got, truth, tol))
