"""Nothing lost: profd killed with -9 mid-stream and restarted, as systemd
would, with real agents sampling; every sample an agent took is stored
once or counted as dropped, and the profiling state comes back."""
import os
import signal
import time

from harness import WORKLOADS, check, once, wait_until

PERSIST = ("--persist-interval", "2s")


def kill_9_and_restart(ctx, args, pause=1.0):
    ctx.daemon.send_signal(signal.SIGKILL)
    ctx.daemon.wait(10)
    time.sleep(pause)              # the agents find nobody for a while
    ctx.start_daemon(*args)


def stored_by_pid(ctx):
    return {p["pid"]: p["samples"] for p in ctx.ctl_json("ps")["processes"]}


def agents_by_pid(ctx):
    return {a["pid"]: a for a in ctx.ctl_json("status")["agents"]
            if a["connected"]}


def wait_balanced(ctx, pids, what=""):
    """Waits until, for each agent, stored == taken - dropped; its rows
    {pid: (stored, taken, dropped, replayed)}."""
    rows = {}

    def balanced():
        st, got = agents_by_pid(ctx), stored_by_pid(ctx)
        if not pids <= set(st):
            return False
        rows.update({p: (got.get(p, 0), st[p]["stats"]["samples"],
                         st[p]["stats"]["dropped"],
                         st[p]["stats"]["replayed"]) for p in pids})
        return all(s == t - d for s, t, d, _ in rows.values())
    try:
        wait_until(balanced, 30, "stored == taken - dropped for each agent")
    except Exception:
        raise AssertionError("%sper pid (stored, taken, dropped, replayed): "
                             "%r; log: %s" % (what, rows, ctx.log_tail()))
    return rows


# Replay and acks are the agent's C code and profd's, the same for every
# interpreter.
@once
def test_kill_9_twice_mid_stream_loses_nothing(ctx):
    state = os.path.join(ctx.tmp, "state")
    args = ("-s", state) + PERSIST
    ctx.start_daemon(*args)
    ctx.ctl("start", "--rate", "300")
    work = os.path.join(WORKLOADS, "workload.py")
    procs = [ctx.run_agent([work, "--seconds", "60"], service="replay-a"),
             ctx.run_agent([work, "--seconds", "60", "--threads", "2"],
                           service="replay-b")]
    pids = {p.pid for p in procs}

    def all_storing(floor):
        def pred():
            got = stored_by_pid(ctx)
            return (pids <= set(agents_by_pid(ctx)) and
                    all(got.get(p, 0) > floor.get(p, 0) for p in pids))
        return pred
    wait_until(all_storing({}), 30, "both agents' samples stored")
    for _ in range(2):
        time.sleep(2.5)            # past a flush, mid-stream
        before = stored_by_pid(ctx)
        # What came after the last flush is lost to profd; the agents
        # reconnect, send it again and carry on.
        kill_9_and_restart(ctx, args)
        wait_until(all_storing(before), 30,
                   "both agents back and storing past the kill")
    ctx.ctl("stop")

    rows = wait_balanced(ctx, pids)
    st = agents_by_pid(ctx)
    replayed = sum(st[p]["stats"]["replayed"] for p in pids)
    dup = ctx.ctl_json("status")["daemon"]["samples_duplicate"]
    check(replayed > 0, "no batch was sent again after the kills")
    check(all(st[p]["stats"]["samples"] > 500 for p in pids),
          "too few samples taken: %r" % {p: st[p]["stats"] for p in pids})
    print("  per pid (stored, taken, dropped, replayed): %r; replayed %d, "
          "duplicates skipped since the last restart %d"
          % (rows, replayed, dup))
    for p in procs:
        p.kill()


@once
def test_profiling_state_is_resumed_after_kill_9(ctx):
    state = os.path.join(ctx.tmp, "state")
    args = ("-s", state) + PERSIST
    ctx.start_daemon(*args)
    work = os.path.join(WORKLOADS, "workload.py")
    a = ctx.run_agent([work, "--seconds", "60"], service="state-a")
    b = ctx.run_agent([work, "--seconds", "60"], service="state-b")
    wait_until(lambda: {a.pid, b.pid} <= set(agents_by_pid(ctx)), 30,
               "two agents")
    ctx.ctl("start", "--rate", "150", "--mode", "cpu", "--max-overhead", "2")
    ctx.ctl("start", "--pid", b.pid, "--rate", "50", "--mode", "wall",
            "--max-overhead", "0.5")

    def configured():
        st = agents_by_pid(ctx)
        return ({a.pid, b.pid} <= set(st) and
                (st[a.pid]["profiling"], st[a.pid]["rate_hz"],
                 st[a.pid]["mode"], st[a.pid]["max_overhead_bp"]) ==
                (True, 150, "cpu", 200) and
                (st[b.pid]["profiling"], st[b.pid]["rate_hz"],
                 st[b.pid]["mode"], st[b.pid]["max_overhead_bp"]) ==
                (True, 50, "wall", 50))
    check(configured(), "not configured: %r" % agents_by_pid(ctx))
    kill_9_and_restart(ctx, args, pause=0.5)
    st = ctx.ctl_json("status")
    check((st["profiling"], st["rate_hz"], st["mode"],
           st["max_overhead_bp"]) == (True, 150, "cpu", 200),
          "global state after restart: %r" %
          {k: st[k] for k in ("profiling", "rate_hz", "mode",
                              "max_overhead_bp")})
    with open(ctx.daemon_log, errors="replace") as f:
        lines = [l for l in f if "resuming the saved profiling state" in l]
    check(len(lines) == 1 and "150 Hz" in lines[0] and
          "1 per-pid" in lines[0], "resume log lines: %r" % lines)
    wait_until(configured, 30, "both agents back with their own settings")
    # The budget was sent again on the reconnect: in force in each agent.
    wait_until(lambda: (lambda st: st.get(a.pid, {}).get("stats", {}).get(
        "max_overhead_bp") == 200 and st.get(b.pid, {}).get("stats", {}).get(
        "max_overhead_bp") == 50)(agents_by_pid(ctx)), 30,
        "the budgets in force again after the restart")
    before = stored_by_pid(ctx)
    wait_until(lambda: stored_by_pid(ctx).get(a.pid, 0) > before.get(a.pid, 0),
               20, "samples after the restart")
    # A global stop is saved too, and forgets the per-pid setting.
    ctx.ctl("stop")
    kill_9_and_restart(ctx, args, pause=0.2)
    st = ctx.ctl_json("status")
    check(not st["profiling"], "profiling on again after a saved stop")
    wait_until(lambda: {a.pid, b.pid} <= set(agents_by_pid(ctx)), 30,
               "agents back")
    check(not any(x["profiling"] for x in agents_by_pid(ctx).values()),
          "an agent was told to profile: %r" % agents_by_pid(ctx))
    a.kill()
    b.kill()


@once
def test_without_a_state_dir_a_restart_starts_with_profiling_off(ctx):
    ctx.start_daemon()
    ctx.ctl("start", "--rate", "150")
    kill_9_and_restart(ctx, (), pause=0.1)
    check(not ctx.ctl_json("status")["profiling"], "profiling on after restart")


def thread_counts(ctx, mode):
    return {r["thread"]: r["self"] for r in
            ctx.ctl_json("show", "--mode", mode, "--by", "thread")["threads"]}


# Per-batch modes are the agent's C code and profd's, the same for every
# interpreter.
@once
def test_batches_keep_their_mode_across_a_switch_and_a_kill_9(ctx):
    """Samples taken in cpu mode stay cpu-mode samples when `start --mode
    wall` comes while they are in flight, and when profd is killed right
    after it and the agent sends them again to the new profd."""
    state = os.path.join(ctx.tmp, "state")
    # Acks come at each flush: a long interval leaves seconds of cpu-mode
    # batches with the agent when profd dies.
    args = ("-s", state, "--persist-interval", "5s")
    ctx.start_daemon(*args)
    ctx.ctl("start", "--rate", "200", "--mode", "cpu")
    p = ctx.run_agent([os.path.join(WORKLOADS, "oncpu.py"), "busy2of8",
                       os.path.join(ctx.tmp, "modes.state")],
                      service="modes")
    wait_until(lambda: stored_by_pid(ctx).get(p.pid, 0) > 300, 30,
               "cpu-mode samples stored")
    time.sleep(1.5)
    ctx.ctl("start", "--mode", "wall")
    time.sleep(0.3)
    kill_9_and_restart(ctx, args, pause=0.5)
    before = stored_by_pid(ctx).get(p.pid, 0)
    wait_until(lambda: stored_by_pid(ctx).get(p.pid, 0) > before + 2000, 30,
               "wall-mode samples after the restart")
    ctx.ctl("stop")

    row = wait_balanced(ctx, {p.pid})[p.pid]
    check(row[3] > 0, "no batch was sent again after the kill")
    cpu, wall = thread_counts(ctx, "cpu"), thread_counts(ctx, "wall")
    print("  (stored, taken, dropped, replayed) %r\n  cpu %r\n  wall %r"
          % (row, cpu, wall))
    busy = sum(v for k, v in cpu.items() if k.startswith("busy_"))
    idle = sum(v for k, v in cpu.items() if k.startswith("idle_"))
    # cpu mode samples threads that run: the idle ones next to never.
    check(busy > 300 and idle <= busy // 50,
          "cpu mode: busy %d, idle %d samples" % (busy, idle))
    # Wall mode samples every thread at every tick: a busy thread has as
    # many as an idle one, unless cpu-mode samples were filed as wall.
    for b in ("busy_0", "busy_1"):
        check(abs(wall.get(b, 0) - wall.get("idle_0", 0)) <=
              wall.get("idle_0", 0) // 20 + 10,
              "wall mode: %s has %d samples, idle_0 %d (cpu-mode samples "
              "filed as wall?)" % (b, wall.get(b, 0), wall.get("idle_0", 0)))
    p.kill()


@once
def test_kill_9_at_20_random_moments_loses_nothing_acknowledged(ctx):
    """profd killed with -9 at 20 random moments under load (mid-flush,
    mid-batch, right after a restart) and restarted at once: per agent,
    stored == taken - dropped at the end."""
    import random
    rnd = random.Random(int(os.environ.get("PROFD_SEED", "0")) or None)
    state = os.path.join(ctx.tmp, "state")
    args = ("-s", state, "--persist-interval", "1s")
    ctx.start_daemon(*args)
    ctx.ctl("start", "--rate", "200")
    work = os.path.join(WORKLOADS, "workload.py")
    procs = [ctx.run_agent([work, "--seconds", "120", "--threads", "2"],
                           service="kill20-%d" % i) for i in range(3)]
    pids = {p.pid for p in procs}
    wait_until(lambda: pids <= set(agents_by_pid(ctx)) and
               all(stored_by_pid(ctx).get(p, 0) > 0 for p in pids), 30,
               "the agents' samples stored")
    pauses = []
    for _ in range(20):
        pause = rnd.uniform(0.05, 1.5)
        pauses.append(round(pause, 2))
        time.sleep(pause)
        kill_9_and_restart(ctx, args, pause=0)
    wait_until(lambda: pids <= set(agents_by_pid(ctx)), 30,
               "the agents back after the last kill")
    ctx.ctl("stop")

    rows = wait_balanced(ctx, pids, "kills after %r s; " % pauses)
    print("  kills after %r s; per pid (stored, taken, dropped, replayed): "
          "%r" % (pauses, rows))
    for p in procs:
        p.kill()
