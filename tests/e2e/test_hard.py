"""Hard cases for the sampler (tests/workloads/hard.py), with each reader.

Every case: the host exits 0 with no fatal error, the agent sent samples,
and the case's own check holds.  Both readers run every case.
"""
import os
import re
import statistics
import time

from harness import WORKLOADS, check, wait_until

READERS = ("direct", "gil")
HARD = os.path.join(WORKLOADS, "hard.py")


def run_case(ctx, case, reader, rate=1000, seconds=2.0, timeout=120):
    env = ctx.agent_env(PROFAGENT_READER=reader)
    p = ctx.run_agent([HARD, case, "--seconds", str(seconds)], env=env)
    rc = p.wait(timeout)
    out = ctx.output(p)
    check(rc == 0, "%s/%s exited %d:\n%s" % (case, reader, rc, out[-3000:]))
    for bad in ("Fatal Python error", "Traceback", "Segmentation", "AddressSanitizer",
                "runtime error:"):
        check(bad not in out, "%s/%s: %s:\n%s" % (case, reader, bad, out[-3000:]))
    return p, out


def fresh(ctx, rate=1000):
    if ctx.daemon is None:
        ctx.start_daemon()
    ctx.ctl("reset")
    ctx.ctl("start", "--rate", rate)


def funcs(ctx, pid=None):
    args = ["show", "--top", "0"] + (["--pid", pid] if pid else [])
    show = ctx.ctl_json(*args)
    return show, {f["function"]: f for f in show["functions"]}


def agent_reader(ctx, pid):
    for a in ctx.ctl_json("status")["agents"]:
        if a["pid"] == pid:
            return a.get("reader")
    return None


def test_deep_recursion_is_truncated_not_fatal(ctx):
    for reader in READERS:
        fresh(ctx)
        p, _ = run_case(ctx, "recursion", reader)
        time.sleep(0.3)
        show, fn = funcs(ctx, p.pid)
        check(show["samples"] > 100, "%s: only %d samples" % (reader, show["samples"]))
        check("spin" in fn and "deep" in fn, "%s: spin/deep missing" % reader)
        folded = ctx.ctl("show", "--pid", p.pid, "--format", "folded").stdout
        check("[truncated]" in folded, "%s: no truncation marker" % reader)
        check(agent_reader(ctx, p.pid) == reader,
              "asked reader %s, agent says %s" % (reader, agent_reader(ctx, p.pid)))


def test_thread_churn(ctx):
    for reader in READERS:
        fresh(ctx)
        p, out = run_case(ctx, "churn", reader)
        time.sleep(0.3)
        show, fn = funcs(ctx, p.pid)
        check(show["samples"] > 0, "%s: no samples" % reader)


def test_many_threads_are_all_sampled(ctx):
    for reader in READERS:
        fresh(ctx, rate=200)
        p = ctx.run_agent([HARD, "many", "--seconds", "5"],
                          env=ctx.agent_env(PROFAGENT_READER=reader))

        def stats():
            a = [x for x in ctx.ctl_json("status")["agents"] if x["pid"] == p.pid]
            check(a, "%s: agent not attached" % reader)
            return a[0]["stats"]
        time.sleep(2)
        s0 = stats()
        time.sleep(2)
        s1 = stats()
        ticks = s1["ticks"] - s0["ticks"]
        check(ticks > 0, "%s: no ticks between two stats reports" % reader)
        per_tick = (s1["samples"] - s0["samples"]) / ticks
        check(per_tick >= 100, "%s: %.1f threads a tick, want >= 100" % (reader, per_tick))
        check(p.wait(60) == 0, "%s: host failed" % reader)


def test_fork_storm(ctx):
    for reader in READERS:
        fresh(ctx)
        p, out = run_case(ctx, "forkstorm", reader, timeout=180)
        check("bad=0" in out, out)
        time.sleep(0.5)
        st = ctx.ctl_json("status")
        kids = [a for a in st["agents"] if a.get("ppid") == p.pid]
        check(len(kids) >= 20, "%s: only %d of 40 children attached" % (reader, len(kids)))


def test_fork_from_non_main_thread(ctx):
    for reader in READERS:
        fresh(ctx)
        p, out = run_case(ctx, "forkthread", reader)
        child = int(re.search(r"child=(\d+)", out).group(1))
        time.sleep(0.3)
        show, fn = funcs(ctx, child)
        check(show["samples"] > 50, "%s: forked child has %d samples"
              % (reader, show["samples"]))
        check("spin" in fn, "%s: child's spin missing" % reader)


def test_exit_while_sampling_at_10khz(ctx):
    for reader in READERS:
        fresh(ctx, rate=10000)
        for _ in range(3):
            run_case(ctx, "exit", reader, seconds=0.7)


def test_generators_coroutines_and_tasks(ctx):
    for reader in READERS:
        fresh(ctx)
        p, _ = run_case(ctx, "async", reader, seconds=2)
        time.sleep(0.3)
        show, fn = funcs(ctx, p.pid)
        for name in ("gen_leaf", "coro_leaf", "outer_coro"):
            check(name in fn and fn[name]["total"] > 10,
                  "%s: %s has %r" % (reader, name, fn.get(name)))
        folded = ctx.ctl("show", "--pid", p.pid, "--format", "folded").stdout
        check(re.search(r"outer_coro[^;]*;coro_leaf[^;]*;spin", folded),
              "%s: no outer_coro;coro_leaf;spin stack" % reader)
        check(re.search(r"gen_leaf[^;]*;spin", folded),
              "%s: no gen_leaf;spin stack" % reader)


def test_freed_code_objects_get_no_stale_names(ctx):
    for reader in READERS:
        fresh(ctx)
        p, _ = run_case(ctx, "codereuse", reader, seconds=3)
        time.sleep(0.3)
        show, fn = funcs(ctx, p.pid)
        dyn = {k: v for k, v in fn.items() if re.fullmatch(r"fn_\d+", k)}
        check(len(dyn) >= 80, "%s: only %d of 100 dynamic functions seen"
              % (reader, len(dyn)))
        for name, f in dyn.items():
            check(f["file"].endswith("dyn_%s.py" % name[3:]),
                  "%s: %s attributed to %s" % (reader, name, f["file"]))
        counts = sorted(f["total"] for f in dyn.values())
        med = statistics.median(counts)
        check(counts[-1] <= 3 * med + 10,
              "%s: one function got %d samples, median %d" % (reader, counts[-1], med))
