"""Hard cases for the sampler (tests/workloads/hard.py), with each reader.

Every case: the host exits 0 with no fatal error, the agent sent samples,
and the case's own check holds.  Both readers run every case.
"""
import json
import os
import re
import statistics
import time

from harness import WORKLOADS, TestFailure, check, wait_until

READERS = ("direct", "gil")
HARD = os.path.join(WORKLOADS, "hard.py")


def host_ok(ctx, p, what, timeout=120):
    """Waits for the host: it exits 0 with no fatal error.  Its output."""
    rc = p.wait(timeout)
    out = ctx.output(p)
    check(rc == 0, "%s exited %d:\n%s" % (what, rc, out[-3000:]))
    for bad in ("Fatal Python error", "Traceback", "Segmentation", "AddressSanitizer",
                "runtime error:"):
        check(bad not in out, "%s: %s:\n%s" % (what, bad, out[-3000:]))
    return out


def run_case(ctx, case, reader, rate=1000, seconds=2.0, timeout=120):
    env = ctx.agent_env(PROFAGENT_READER=reader)
    p = ctx.run_agent([HARD, case, "--seconds", str(seconds)], env=env)
    return p, host_ok(ctx, p, "%s/%s" % (case, reader), timeout)


def fresh(ctx, rate=1000):
    if ctx.daemon is None:
        ctx.start_daemon()
    ctx.ctl("reset")
    ctx.ctl("start", "--rate", rate)


def funcs(ctx, pid=None):
    args = ["show", "--top", "0"] + (["--pid", pid] if pid else [])
    show = ctx.ctl_json(*args)
    return show, {f["function"]: f for f in show["functions"]}


def agent_stats(ctx, p, what):
    """The last stats report of p's agent, None before one with ticks; p
    must be running."""
    check(p.poll() is None, "%s: host died:\n%s" % (what, ctx.output(p)[-3000:]))
    a = [x for x in ctx.ctl_json("status")["agents"]
         if x["pid"] == p.pid and x.get("stats")]
    return a[0]["stats"] if a and a[0]["stats"]["ticks"] else None


def report_after(ctx, p, s, what, ticks=1, timeout=30):
    """The first report of p's agent at least `ticks` ticks after report s
    (reports come every second)."""
    def later():
        n = agent_stats(ctx, p, what)
        return n if n and n["ticks"] >= s["ticks"] + ticks else None
    return wait_until(later, timeout, "%s: a stats report %d ticks on"
                      % (what, ticks))


def agent_reader(ctx, pid):
    for a in ctx.ctl_json("status")["agents"]:
        if a["pid"] == pid:
            return a.get("reader")
    return None


def test_deep_recursion_is_truncated_not_fatal(ctx):
    for reader in READERS:
        fresh(ctx)
        p, _ = run_case(ctx, "recursion", reader)
        ctx.wait_departed(p.pid)
        show, fn = funcs(ctx, p.pid)
        check(show["samples"] > 100, "%s: only %d samples" % (reader, show["samples"]))
        check("spin" in fn and "deep" in fn, "%s: spin/deep missing" % reader)
        folded = ctx.ctl("show", "--pid", p.pid, "--format", "folded").stdout
        check("[truncated]" in folded, "%s: no truncation marker" % reader)
        check(agent_reader(ctx, p.pid) == reader,
              "asked reader %s, agent says %s" % (reader, agent_reader(ctx, p.pid)))


def test_thread_churn(ctx):
    """Threads that start and end all the time: every tick the sampler got
    captures the main thread (or counts the torn read that stopped it),
    profd stores every stack the agent captured, and every thread stored is
    the main thread or one the host started."""
    for reader in READERS:
        fresh(ctx)
        what = "churn/%s" % reader
        # Runs until told: the window below is always inside the churn.
        done = os.path.join(ctx.tmp, "churn-%s.done" % reader)
        p = ctx.run_agent([HARD, "churn", "--seconds", "300", "--done", done],
                          env=ctx.agent_env(PROFAGENT_READER=reader))
        wait_until(lambda: "churning" in ctx.output(p) or p.poll() is not None,
                   60, "%s: the churn to start" % what)
        # Reports come every second: the next one is from after the start.
        s0 = report_after(ctx, p, wait_until(
            lambda: agent_stats(ctx, p, what), 30, "%s: agent stats" % what),
            what)
        # A window of 1000 ticks, however long the sampler takes to get them.
        s1 = report_after(ctx, p, s0, what, ticks=1000, timeout=120)
        open(done, "w").close()
        out = host_ok(ctx, p, what)
        m = re.search(r"^threads=(\d+)$", out, re.M)
        check(m and int(m.group(1)) > 0, "%s: no threads ran:\n%s"
              % (what, out[-3000:]))
        ticks = s1["ticks"] - s0["ticks"]
        # Stacks really captured: a late tick's repeats left out.
        real = (s1["samples"] - s1["samples_made_up"]) - \
            (s0["samples"] - s0["samples_made_up"])
        torn = s1["invalid"] - s0["invalid"]
        print("  %s: %d ticks, %d stacks, %d torn, %s threads started"
              % (reader, ticks, real, torn, m.group(1)))
        check(real + torn >= ticks, "%s: %d stacks and %d torn reads in %d "
              "ticks: a tick missed the main thread" % (what, real, torn, ticks))
        ctx.wait_departed(p.pid)
        # All it sent is stored once profd has seen it go; its last report
        # may be from before its last batches, never after.
        st = [a for a in ctx.ctl_json("status")["agents"]
              if a["pid"] == p.pid][0]["stats"]
        by = ctx.ctl_json("show", "--pid", p.pid, "--by", "thread",
                          "--top", 0)
        sent = st["samples"] - st["dropped"] - st["discarded"]
        check(by["samples"] >= sent, "%s: %d samples stored, the agent sent "
              "%d: %s" % (what, by["samples"], sent, st))
        rows = by["threads"]
        check(sum(t["self"] for t in rows) == by["samples"], "%s: threads "
              "hold %d of %d samples" % (what, sum(t["self"] for t in rows),
                                         by["samples"]))
        top = max(rows, key=lambda t: t["self"])
        check(top["thread"] == "MainThread" and top["tid"] == p.pid,
              "%s: the main thread is not the most sampled: %r" % (what, top))
        # Names are not keys: a thread the agent saw before its name was
        # told is Thread-<tid>, which may also be another's name.
        odd = [t for t in rows if t["thread"] != "MainThread" and
               not t["thread"].startswith("Thread-")]
        check(not odd, "%s: threads the host never started: %r"
              % (what, odd[:5]))


def test_many_threads_are_all_sampled(ctx):
    for reader in READERS:
        fresh(ctx, rate=200)
        # Runs until told: the window below is always inside its life.
        done = os.path.join(ctx.tmp, "many-%s.done" % reader)
        p = ctx.run_agent([HARD, "many", "--seconds", "300", "--done", done],
                          env=ctx.agent_env(PROFAGENT_READER=reader))
        wait_until(lambda: "threads=" in ctx.output(p), 60,
                   "%s: the threads to start" % reader)
        # Reports come every second: the next one is from after the start.
        s0 = report_after(ctx, p, wait_until(
            lambda: agent_stats(ctx, p, reader), 30, "%s: agent stats" % reader),
            reader)
        time.sleep(2)           # the measuring window
        s1 = report_after(ctx, p, s0, reader)
        open(done, "w").close()
        ticks = s1["ticks"] - s0["ticks"]
        check(ticks > 0, "%s: no ticks between two stats reports" % reader)
        # Stacks really captured a tick: a late tick's repeats left out.
        per_tick = ((s1["samples"] - s1["samples_made_up"]) -
                    (s0["samples"] - s0["samples_made_up"])) / ticks
        check(per_tick >= 100, "%s: %.1f threads a tick, want >= 100" % (reader, per_tick))
        check(p.wait(60) == 0, "%s: host failed" % reader)


def test_fork_storm(ctx):
    """40 children forked in quick succession: every one is seen by profd,
    as a process of its own with the host as parent.  The children wait
    (after their work) until the test has seen them all, so that a slow
    machine only makes that take longer."""
    for reader in READERS:
        fresh(ctx)
        what = "forkstorm/%s" % reader
        done = os.path.join(ctx.tmp, "storm-%s.done" % reader)
        p = ctx.run_agent([HARD, "forkstorm", "--seconds", "300", "--done",
                           done], env=ctx.agent_env(PROFAGENT_READER=reader))

        def kids():
            return {int(k) for k in re.findall(r"^kid=(\d+)$",
                                               ctx.output(p), re.M)}
        wait_until(lambda: len(kids()) == 40 or p.poll() is not None, 120,
                   "%s: 40 children forked" % what)
        check(p.poll() is None, "%s: host exited:\n%s"
              % (what, ctx.output(p)[-3000:]))
        want = kids()

        def seen():
            return {a["pid"] for a in ctx.ctl_json("status")["agents"]
                    if a.get("ppid") == p.pid}
        try:
            wait_until(lambda: want <= seen(), 120, "every child at profd")
        except TestFailure:
            check(False, "%s: %d of 40 children never seen by profd: %r"
                  % (what, len(want - seen()), sorted(want - seen())))
        open(done, "w").close()
        out = host_ok(ctx, p, what)
        check("children=40 bad=0" in out, "%s: %s" % (what, out[-3000:]))


def test_fork_from_non_main_thread(ctx):
    for reader in READERS:
        fresh(ctx)
        p, out = run_case(ctx, "forkthread", reader)
        child = int(re.search(r"child=(\d+)", out).group(1))
        ctx.wait_departed(child)
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
        ctx.wait_departed(p.pid)
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
        p, out = run_case(ctx, "codereuse", reader, seconds=3)
        m = re.search(r"^TOOK (.*)$", out, re.M)
        check(m, "%s: no TOOK line:\n%s" % (reader, out[-3000:]))
        took = json.loads(m.group(1))
        ctx.wait_departed(p.pid)
        show, fn = funcs(ctx, p.pid)
        dyn = {k: v for k, v in fn.items() if re.fullmatch(r"fn_\d+", k)}
        check(len(dyn) >= 80, "%s: only %d of 100 dynamic functions seen"
              % (reader, len(dyn)))
        for name, f in dyn.items():
            check(f["file"].endswith("dyn_%s.py" % name[3:]),
                  "%s: %s attributed to %s" % (reader, name, f["file"]))
        # No name collects another function's samples: each gets at most 3
        # times its share, the share being its own wall time (a function
        # the machine's load stretched gets its extra ticks, rightly).
        per_s = statistics.median(f["total"] / took[k] for k, f in dyn.items())
        for name, f in dyn.items():
            check(f["total"] <= 3 * per_s * took[name] + 10,
                  "%s: %s got %d samples in %.3f s, median %.0f/s"
                  % (reader, name, f["total"], took[name], per_s))
