"""The benchmarks' workloads are what their tables say they are, as the
real agent and profd see them; nothing here is timed."""
import os

from harness import WORKLOADS, check, wait_until


def capture_stacks(ctx, *args, samples=200):
    """{function names (root first): samples} of tests/workloads/capture.py ARGS,
    from profd's folded output once it holds `samples` of it, counted from
    a reset made after the workload said it was ready."""
    p = ctx.run_agent([os.path.join(WORKLOADS, "capture.py"), "--seconds",
                       "120"] + list(args), service="capture")
    wait_until(lambda: "ready" in ctx.output(p), 60, "the workload")
    ctx.ctl("reset")
    wait_until(lambda: ctx.ctl_json("show", "--pid", p.pid)["samples"] >=
               samples, 60, "%d samples" % samples)
    folded = ctx.ctl("show", "--pid", p.pid, "--format", "folded", "--top",
                     "0").stdout
    p.kill()
    p.wait(30)
    stacks = {}
    for l in folded.splitlines():
        stack, _, count = l.rpartition(" ")
        key = tuple(f.split(" (")[0] for f in stack.split(";"))
        stacks[key] = stacks.get(key, 0) + int(count)
    return stacks


def fn(frame):
    return frame


def test_capture_workload_spins_20_frames_deep(ctx):
    """bench/capture.py's host: one thread whose every sample in spin() is
    one stack of 20 Python frames, most of its samples (the rest: its
    start-up, imports included, sampled from the agent's first tick, and
    the descent); with --threads 32, each tick 32 such stacks beside the
    main thread's join."""
    ctx.start_daemon()
    ctx.ctl("start", "--rate", "1000", "--mode", "wall")
    one = capture_stacks(ctx)
    spinning = {s: n for s, n in one.items() if fn(s[-1]) == "spin"}
    check(len(spinning) == 1, "not one spinning stack: %r" % one)
    check(sum(spinning.values()) >= 0.75 * sum(one.values()),
          "the spinning stack has under 75%% of the samples: %r" % one)
    frames = list(spinning)[0]
    check(fn(frames[-1]) == "spin" and len(frames) == 20,
          "not 20 frames ending in spin: %d %r" % (len(frames), frames))

    ctx.ctl("start", "--rate", "100", "--mode", "wall")
    # 100 ticks: a batch of samples taken before the reset (threads still
    # on their way down, the main thread waiting for them) that reaches
    # profd after it weighs a few samples against 100 of the main thread.
    many = capture_stacks(ctx, "--threads", "32", samples=3300)
    spin = {s: n for s, n in many.items() if fn(s[-1]) == "spin"}
    rest = sum(many.values()) - sum(spin.values())
    check(all(len(s) == 20 for s in spin),
          "a spinning stack is not 20 frames: %r"
          % [s for s in spin if len(s) != 20])
    # Both counts are from the same ticks: 32 to 1, give or take the
    # ticks at the edges of the window.
    check(rest > 0 and 30 * rest <= sum(spin.values()) <= 34 * rest,
          "not 32 spinning stacks a tick beside the main thread: %r"
          % {s[-1]: n for s, n in many.items()})
