"""Where the direct reader's struct layout comes from, and whole stacks.

On 3.13+ the agent reads CPython's offsets from the running interpreter
(_PyRuntime.debug_offsets) and checks them on its own stack at import;
PROFAGENT_LAYOUT=interpreter ignores the build's headers entirely and
PROFAGENT_LAYOUT=headers uses only them.  Each must give the same stacks.
A stack that does not reach its thread's entry frame is never stored.
"""
import os
import subprocess
import sys

from harness import WORKLOADS, check, wait_until

WORK = os.path.join(WORKLOADS, "layout.py")


def python_version(ctx):
    out = subprocess.run([ctx.python, "-c", "import sys; print('%d %d' % "
                          "sys.version_info[:2])"], stdout=subprocess.PIPE,
                         universal_newlines=True, timeout=60).stdout.split()
    return int(out[0]), int(out[1])


def agent_stats(ctx, env):
    code = ("import json, profagent._profagent as p; s = p.stats(); "
            "print(json.dumps([s['layout'], s['layout_moved'], "
            "s['layout_why']]))")
    r = subprocess.run([ctx.python, "-c", code], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=60)
    check(r.returncode == 0, "stats: %s" % r.stderr)
    import json
    return json.loads(r.stdout), r.stderr


def test_layout_source_is_the_interpreter_from_3_13(ctx):
    ver = python_version(ctx)
    (layout, moved, why), err = agent_stats(ctx, ctx.agent_env())
    want = 2 if ver >= (3, 13) else 1
    check(layout == want and why == "",
          "layout %r (want %d), why %r, stderr %r" % (layout, want, why, err))
    check(moved == 0, "%d fields moved on a stock interpreter: %s"
          % (moved, err))
    for choice in ("headers", "interpreter"):
        (layout, _, why), err = agent_stats(
            ctx, ctx.agent_env(PROFAGENT_LAYOUT=choice))
        want = 2 if ver >= (3, 13) and choice == "interpreter" else 1
        check(layout == want and why == "", "PROFAGENT_LAYOUT=%s: layout "
              "%r (want %d), why %r" % (choice, layout, want, why))
    (layout, _, _), err = agent_stats(ctx, ctx.agent_env(
        PROFAGENT_LAYOUT="bogus"))
    check("PROFAGENT_LAYOUT=bogus" in err and layout in (1, 2),
          "a bad PROFAGENT_LAYOUT is not reported: %r" % err)


def parked_stacks(ctx, layout):
    """The distinct stacks of the parked workload under one layout, each
    with at least a tenth of its threads' samples: a thread sampled on its
    way in (the agent samples from the first millisecond) shows a true
    stack of a call not yet made, for a tick or two."""
    ctx.ctl("reset")
    env = ctx.agent_env(PROFAGENT_READER="direct")
    if layout:
        env["PROFAGENT_LAYOUT"] = layout
    p = ctx.run_agent([WORK, "parked", "--seconds", "2.5"], env=env)
    check(p.wait(60) == 0, "workload failed: %s" % ctx.output(p))
    ctx.wait_departed(p.pid)
    st = [a for a in ctx.ctl_json("status")["agents"] if a["pid"] == p.pid]
    check(st and st[0]["reader"] == "direct", "reader: %r" % st)
    folded = ctx.ctl("show", "--pid", p.pid, "--format", "folded", "-n",
                     "0").stdout.splitlines()
    counts = {}
    for line in folded:
        stack, n = line.rsplit(" ", 1)
        if "level1" in stack:
            counts[stack] = counts.get(stack, 0) + int(n)
    total = sum(counts.values())
    return {s for s, n in counts.items() if n * 10 >= total}, st[0]


def test_every_layout_gives_the_same_stacks(ctx):
    ctx.start_daemon()
    ctx.ctl("start", "--rate", "200")
    base, _ = parked_stacks(ctx, None)
    check(len(base) == 3 and all(s.split(";")[-1].startswith(("parked_",
          "level3")) for s in base),
          "want the three parked stacks, got %r" % sorted(base))
    for layout in ("interpreter", "headers"):
        got, _ = parked_stacks(ctx, layout)
        check(got == base, "PROFAGENT_LAYOUT=%s gives other stacks:\n  %s\n"
              "vs the default's\n  %s" % (layout, "\n  ".join(sorted(got)),
                                          "\n  ".join(sorted(base))))


def run_folded(ctx, rate, case, seconds):
    """Runs a layout.py case under the direct reader to its end; its
    process and its stacks as (names root first, count) pairs."""
    ctx.start_daemon()
    ctx.ctl("start", "--rate", rate)
    p = ctx.run_agent([WORK, case, "--seconds", seconds],
                      env=ctx.agent_env(PROFAGENT_READER="direct"))
    check(p.wait(120) == 0, "workload failed: %s" % ctx.output(p))
    ctx.wait_departed(p.pid)
    out = []
    for line in ctx.ctl("show", "--pid", p.pid, "--format", "folded", "-n",
                        "0").stdout.splitlines():
        stack, n = line.rsplit(" ", 1)
        out.append(([f.split(" (")[0] for f in stack.split(";")], int(n)))
    return p, out


def test_generator_stacks_are_whole_or_left_out(ctx):
    p, folded = run_folded(ctx, "1000", "genexpr", "4")
    total = sum(n for _, n in folded)
    check(total > 1000, "only %d samples" % total)
    # Every stack through the workers' code starts at the thread's start.
    roots, example = {}, {}
    for names, n in folded:
        if not set(names) & {"driver", "consume", "squares"}:
            continue
        roots[names[0]] = roots.get(names[0], 0) + n
        example.setdefault(names[0], ";".join(names))
    bad = {r: n for r, n in roots.items()
           if r not in ("Thread._bootstrap", "_bootstrap")}
    check(not bad, "stacks cut short stored as whole (root: samples): %r; "
          "e.g. %s" % (bad, [example[r] for r in bad][:2]))
    st = [a for a in ctx.ctl_json("status")["agents"] if a["pid"] == p.pid]
    inv = st[0]["stats"]["invalid"]
    # Torn walks are retried from fresh copies; two threads yielding
    # every few hundred nanoseconds still tear 1-3% of them on this VM.
    check(inv <= 0.05 * (total + inv), "%d of %d stacks invalid"
          % (inv, total + inv))


def test_a_generator_resumed_from_c_is_a_whole_stack(ctx):
    """A thread whose only Python frame is a generator resumed from C (a
    _thread running sum() over it) is sampled, the generator as its
    root."""
    _, folded = run_folded(ctx, "500", "cgen", "2")
    n = sum(c for names, c in folded if names[0] == "burning")
    check(n >= 300, "only %d samples rooted at the generator: %s"
          % (n, folded[:5]))


def test_callers_that_change_under_the_same_leaf_frame_are_read_again(ctx):
    """A leaf frame that keeps its address and caller link while the
    callers under it change (swap_a for 3 ms, swap_b for 1 ms, frames of
    one size) is credited to the callers it has at each sample: the direct
    reader walks only the leaf when the bytes of the callers' frames are
    those of its last walk, and must see that they are not."""
    _, folded = run_folded(ctx, "1000", "swap", "3")
    by = {"swap_a": 0, "swap_b": 0}
    for names, n in folded:
        if names[-1] == "swap_leaf":
            check(names[0] == "<module>" and names[-2] in by,
                  "a stack of the leaf not under its callers: %s"
                  % ";".join(names))
            by[names[-2]] += n
    a, b = by["swap_a"], by["swap_b"]
    check(a + b >= 1000, "only %d samples in the leaf" % (a + b))
    # 3 ms of every 4 under swap_a; the calls between cost little.
    check(abs(a / (a + b) - 0.75) <= 0.06, "swap_a %d, swap_b %d: %.1f%% "
          "under swap_a, want 75%%" % (a, b, 100.0 * a / (a + b)))


def test_asyncio_offsets_match_live_tasks(ctx):
    """3.14+: the _asyncio module's published offsets (a task's name and
    coroutine, the thread's running task and loop) read the very objects
    the asyncio API returns; before 3.14 the agent says there are none."""
    r = subprocess.run([ctx.python, os.path.join(WORKLOADS,
                                                 "asyncio_layout.py")],
                       env=ctx.agent_env(), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True,
                       timeout=60)
    if python_version(ctx) >= (3, 14):
        check(r.returncode == 0 and r.stdout.startswith("OK "),
              "asyncio offsets: %s" % r.stdout[-1000:])
    else:
        check(r.returncode != 0 and "publishes no asyncio offsets" in
              r.stdout, "before 3.14: %s" % r.stdout[-500:])
