"""bench.py -- profd's benchmark: the sampler against its own targets.

For each interpreter (tests/pythons.sh) and each reader (gil, direct), with a
real profd and the real agent:
  rate      achieved / asked sampling rate with a CPU-bound host thread
  cpu/smp   sampler thread CPU time per sample (agent counter sampler_ns),
            including the kernel's timer wake-up of the thread
  work/smp  of that, capture + intern + encode (agent counter work_ns)
  B/smp     wire bytes per sample in steady state (bytes_sent delta / samples)
  70/30     |measured leaf_a share - true share| at 1 kHz over 5 s, in points
  50/50     wall mode on a thread half CPU, half sleep: |error| in points
            (time-weighted: each sample weighs the real time since the last)
  slowdown  the host's own time for a fixed amount of work with the agent
            sampling at 1 kHz vs no agent, median of interleaved pairs
            (A B B A ...), with min/max
  host cpu  the same for the host thread's CPU time (time.thread_time),
            which a busy neighbour on the machine disturbs less
A row with reader "none" runs both sides of each pair without the agent:
its slowdown is the machine's noise floor.  Prints a table; never fails on
timing.

  bench.py [--pythons LABEL,...] [--pairs N] [--seconds S] [--readers gil,direct]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import harness  # noqa: E402

WL = os.path.join(ROOT, "tests", "workloads")


def pythons():
    out = subprocess.run(["sh", os.path.join(ROOT, "tests", "pythons.sh")],
                         stdout=subprocess.PIPE, universal_newlines=True).stdout
    return [l.split(" ", 1) for l in out.splitlines() if l.strip()]


def build(label, py):
    d = os.path.join("build", "bench", label)
    subprocess.run(["make", "-s", "--no-print-directory", "agent", "PYTHON=" + py,
                    "AGENTDIR=" + d], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return os.path.join(ROOT, d)


def agent_of(ctx, pid):
    for a in ctx.ctl_json("status")["agents"]:
        if a["pid"] == pid:
            return a
    return None


def rate_run(ctx, reader, rate, seconds):
    """One process, CPU bound, sampled at `rate`; returns figures."""
    ctx.ctl("reset")
    ctx.ctl("start", "--rate", rate, "--mode", "wall")
    env = ctx.agent_env(PROFAGENT_READER=reader)
    p = ctx.run_agent([os.path.join(WL, "workload.py"), "--seconds",
                       str(seconds)], env=env)
    time.sleep(min(1.5, seconds / 3))
    a0, t0 = agent_of(ctx, p.pid), time.monotonic()
    time.sleep(seconds * 0.6)
    a1, t1 = agent_of(ctx, p.pid), time.monotonic()
    p.wait(seconds * 10 + 60)
    show = ctx.ctl_json("show", "--pid", p.pid, "--top", "0")
    res = {}
    if a0 and a1:
        s0, s1 = a0["stats"], a1["stats"]
        # Stacks really captured: a late tick's repeats left out.
        dsamples = (s1["samples"] - s1.get("samples_made_up", 0)) - \
            (s0["samples"] - s0.get("samples_made_up", 0))
        dticks = s1["ticks"] - s0["ticks"]
        # stats arrive about once a second: use the agent's own window
        res["achieved"] = s1.get("achieved_mhz", 0) / 1000.0
        if dsamples > 0:
            res["cpu_us"] = (s1["sampler_ns"] - s0["sampler_ns"]) / dsamples / 1000
            res["work_us"] = (s1.get("work_ns", 0) - s0.get("work_ns", 0)) / dsamples / 1000
            res["bytes"] = (s1["bytes_sent"] - s0["bytes_sent"]) / dsamples
        res["dropped"] = s1["dropped"]
        res["invalid"] = s1["invalid"]
        res["ticks"] = dticks
    fn = {f["function"]: f["self"] for f in show["functions"]}
    a, b = fn.get("leaf_a", 0), fn.get("leaf_b", 0)
    if a + b:
        res["split_err"] = abs(100.0 * a / (a + b) - 70.0)
        res["split_n"] = a + b
    return res


def mixed_run(ctx, reader, rate, seconds):
    ctx.ctl("reset")
    ctx.ctl("start", "--rate", rate, "--mode", "wall")
    p = ctx.run_agent([os.path.join(WL, "mixed.py"), "--seconds",
                       str(seconds)], env=ctx.agent_env(PROFAGENT_READER=reader))
    p.wait(seconds * 10 + 60)
    out = ctx.output(p)
    time.sleep(0.3)
    truth = float(out.split("cpu_share=")[1].split()[0])
    show = ctx.ctl_json("show", "--pid", p.pid, "--top", "0")
    # Wall mode weighs each sample by the real time since that thread's
    # previous one, so a late tick does not shrink its phase.
    fn = {f["function"]: f.get("self_us", f["self"]) for f in show["functions"]}
    c = fn.get("cpu_part", 0)
    tot = {f["function"]: f.get("total_us", f["total"]) for f in show["functions"]}
    s = tot.get("sleep_part", 0)
    if c + s == 0:
        return None
    return abs(100.0 * c / (c + s) - truth)


def slowdown(ctx, reader, rate, pairs, rounds):
    ctx.ctl("start", "--rate", rate, "--mode", "wall")
    base_env = dict(os.environ)
    base_env.pop("PYTHONPATH", None)
    args = [ctx.python, os.path.join(WL, "workload.py"), "--rounds", str(rounds)]
    agent_args = [ctx.python, "-m", "profagent", "run", "--"] + args
    ratios, cpu_ratios = [], []
    for i in range(pairs):
        times = {}
        order = ("base", "agent") if i % 2 == 0 else ("agent", "base")
        for which in order:
            # reader "none": both sides run without the agent (A/A), the
            # noise floor any other row must be read against.
            if reader == "none":
                which_env, run = base_env, args
            else:
                which_env = base_env if which == "base" else ctx.agent_env(PROFAGENT_READER=reader)
                run = args if which == "base" else agent_args
            env = which_env
            # The host's own time for its work (elapsed= from the
            # workload), so start-up of the wrapper is not counted.
            out = subprocess.run(run, env=env,
                                 stdout=subprocess.PIPE, universal_newlines=True,
                                 check=True).stdout
            times[which] = (float(out.split("elapsed=")[1].split()[0]),
                            float(out.split("cpu=")[1].split()[0]))
        ratios.append(times["agent"][0] / times["base"][0] - 1)
        cpu_ratios.append(times["agent"][1] / times["base"][1] - 1)
    return tuple(x * 100 for x in (
        statistics.median(ratios), min(ratios), max(ratios),
        statistics.median(cpu_ratios), min(cpu_ratios), max(cpu_ratios)))


def fmt(v, spec, missing="-"):
    return missing if v is None else format(v, spec)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pythons", default="")
    ap.add_argument("--readers", default="none,gil,direct",
                    help="none = no agent on either side (A/A noise floor)")
    ap.add_argument("--pairs", type=int, default=15)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--json", help="also write the raw figures here")
    a = ap.parse_args()
    want = set(filter(None, a.pythons.split(",")))
    rows, raw = [], []
    for label, py in pythons():
        if want and label not in want:
            continue
        agent = build(label, py)
        for reader in a.readers.split(","):
            ctx = harness.Ctx(py, agent)
            try:
                ctx.start_daemon()
                if reader == "none":
                    r1, r10, mixed = {}, {}, None
                else:
                    r1 = rate_run(ctx, reader, 1000, a.seconds)
                    r10 = rate_run(ctx, reader, 10000, a.seconds)
                    mixed = mixed_run(ctx, reader, 1000, a.seconds)
                slow = slowdown(ctx, reader, 1000, a.pairs, a.rounds) if a.pairs else None
            except Exception as e:  # a bench reports, it does not fail
                print("bench: %s %s: %s" % (label, reader, e), file=sys.stderr)
                ctx.close()
                continue
            ctx.close()
            raw.append(dict(python=label, reader=reader, r1k=r1, r10k=r10,
                            mixed_err=mixed, slowdown=slow))
            rows.append([
                label, reader,
                "%s/%s" % (fmt(r1.get("achieved"), ".0f"), fmt(r10.get("achieved"), ".0f")),
                "%s/%s" % (fmt(r1.get("cpu_us"), ".1f"), fmt(r10.get("cpu_us"), ".1f")),
                "%s/%s" % (fmt(r1.get("work_us"), ".2f"), fmt(r10.get("work_us"), ".2f")),
                "%s/%s" % (fmt(r1.get("bytes"), ".1f"), fmt(r10.get("bytes"), ".1f")),
                fmt(r1.get("split_err"), ".2f"),
                fmt(mixed, ".2f"),
                "-" if not slow else "%+.1f%% [%+.1f, %+.1f]" % slow[:3],
                "-" if not slow else "%+.1f%% [%+.1f, %+.1f]" % slow[3:],
                str(r1.get("invalid", "-")),
            ])
            print("bench: %s %s done" % (label, reader), file=sys.stderr, flush=True)
    head = ["python", "reader", "Hz @1k/@10k", "thread cpu us/smp 1k/10k",
            "work us/smp 1k/10k",
            "B/smp 1k/10k", "70/30 err pp", "50/50 err pp",
            "slowdown @1k med [min,max]", "host cpu @1k med [min,max]",
            "invalid"]
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(raw, f, indent=1)


if __name__ == "__main__":
    main()
