"""cpu mode charges CPU to the code that burned it: a sample counts a
thread only if it is on a CPU at the tick (decided at the capture), with
the tick's period as its weight.  Each case runs with both readers."""
import os
import time

from harness import WORKLOADS, check, wait_until

READERS = ("direct", "gil")
RATE = 1000


def start_workload(ctx, *args):
    state = os.path.join(ctx.tmp, "state-%d" % len(ctx.procs))
    p = ctx.run_agent([os.path.join(WORKLOADS, "oncpu.py")] + list(args)
                      + [state], service="oncpu")
    wait_until(lambda: os.path.exists(state), 30, "the workload to start")
    wait_until(lambda: any(a["pid"] == p.pid and a["connected"]
                           for a in ctx.ctl_json("status")["agents"]),
               30, "the agent to attach")
    return p, state


def read_state(path):
    with open(path) as f:
        return [int(x) for x in f.read().split()]


def agent_reports(ctx):
    """{pid: (samples profd took from it since the last reset, its agent's
    last stats report)} of the connected agents."""
    return {a["pid"]: (a["samples"], a.get("stats") or {})
            for a in ctx.ctl_json("status")["agents"] if a["connected"]}


def wait_stored(ctx, base):
    """After a stop: waits until each agent of base (agent_reports at the
    reset, which zeroes profd's counts) says it stopped, two reports in a
    row with the same ticks (while it samples, ticks come between any two),
    and profd holds every sample it counted since its report in base."""
    seen = {pid: [] for pid in base}

    def stored():
        now = agent_reports(ctx)
        done = True
        for pid, (_, b) in base.items():
            check(pid in now, "the agent of pid %d went" % pid)
            got, r = now[pid]
            s = seen[pid]
            if not s or r.get("bytes_sent") != s[-1].get("bytes_sent"):
                s.append(r)
            sent = sum(sign * (r.get(k, 0) - b.get(k, 0)) for sign, k in
                       ((1, "samples"), (-1, "dropped"), (-1, "discarded")))
            done = done and len(s) >= 2 and got >= sent and \
                s[-1].get("ticks") == s[-2].get("ticks")
        return done
    wait_until(stored, 60, "the agents to stop and their samples stored")


def profile(ctx, mode, reader, seconds, states=(), thread=None):
    """Profiles for `seconds`; returns {pid: {function: (self, self_us)}}
    and the state files' deltas over the window."""
    ctx.ctl("stop")
    ctx.ctl("reset")
    base = agent_reports(ctx)
    before = [read_state(s) for s in states]
    ctx.ctl("start", "--rate", RATE, "--mode", mode, "--reader", reader)
    time.sleep(seconds)     # the measuring window
    ctx.ctl("stop")
    after = [read_state(s) for s in states]
    wait_stored(ctx, base)
    out = {}
    for a in ctx.ctl_json("status")["agents"]:
        if not a["connected"]:
            continue
        args = ["show", "--pid", a["pid"], "--top", "0"]
        if thread:
            args += ["--thread", thread]
        rows = ctx.ctl_json(*args)
        out[a["pid"]] = {f["function"]: (f["self"], f["self_us"])
                         for f in rows["functions"]}
    return out, [[y - x for x, y in zip(b, e)] for b, e in zip(before,
                                                             after)]


SANITIZED = [False]


def overloaded():
    """More runnable threads than twice the CPUs: threads wait in run
    queues while holding the GIL or just woken, and the sampler is late in
    step with the workload; the figures below loosen then (and say so)."""
    load = SANITIZED[0] or os.getloadavg()[0] > 2 * (os.cpu_count() or 1)
    if load:
        print("  (%s: looser bounds)" % ("sanitized agent" if SANITIZED[0]
              else "machine overloaded: load %.1f" % os.getloadavg()[0]))
    return load


def wall_tolerance():
    """The wall-mode time split, within 5 points of the true one (10 when
    overloaded).  The aim is 2 points, but on this 2-core VM the sampler
    competes for a CPU with the very thread it samples: a tick it is late
    for leaves the end of a burst to the next stack, so the split drifts 2
    to 8 points with whatever else runs (docs/agent.md).  5 points catches a wrong
    attribution without failing on the machine's noise."""
    return 0.10 if overloaded() else 0.05


def cpu_floor():
    """>= 95% of cpu-mode samples and weight on the code burning CPU."""
    return 0.85 if overloaded() else 0.95


def share(funcs, name, i):
    total = sum(v[i] for v in funcs.values())
    return funcs.get(name, (0, 0))[i] / total if total else 0.0


def test_cpu_mode_puts_a_duty_cycle_on_burn(ctx):
    """The direct reader only: the gil reader reads a stack only when the
    thread lets the GIL go, and a burst shorter than the switch interval
    (5 ms) ends in sleep() first, so it sees almost none of burn() in any
    mode (docs/agent.md, "How the agent samples").  A sanitized agent is several
    times slower: the bounds loosen as on an overloaded machine."""
    SANITIZED[0] = ctx.sanitize
    ctx.start_daemon()
    # One duty cycle at a time: two would compete for the 2 CPUs with
    # each other's samplers.
    for burn_ms, idle_ms in (("4", "6"), ("1", "9")):
        cycle = "%s/%s" % (burn_ms, idle_ms)
        p, state = start_workload(ctx, "dutycycle", burn_ms, idle_ms)
        wait_until(lambda: len(read_state(state)) == 4, 30,
                   "the duty cycle's first totals")
        for reader in ("direct",):
            prof, deltas = profile(ctx, "cpu", reader, 2.5, [state],
                                   thread="dutycycle")
            f = prof.get(p.pid, {})
            n = sum(v[0] for v in f.values())
            check(n >= (10 if ctx.sanitize else 40), "%s %s: only %d cpu "
                  "samples" % (reader, cycle, n))
            # 95%, unless burn() truly has less of the thread's CPU: the
            # loop's own Python and, on this kind of VM, each wake-up from
            # sleep (~35 us of thread CPU, 3.5% of a 1 ms burst) are CPU
            # spent outside burn(), which cpu mode rightly shows.
            d = deltas[0]
            truth = d[2] / float(d[3]) if d[3] > 0 else 1.0
            floor = min(cpu_floor(), truth - 0.02)
            print("  %s: burn() has %.1f%% of the thread's CPU; cpu-mode "
                  "floor %.1f%%" % (cycle, 100 * truth, 100 * floor))
            print("  %s: burn() has %.1f%% of the cpu-mode samples"
                  % (cycle, 100 * share(f, "burn", 0)))
            for i, what in ((0, "samples"), (1, "CPU weight")):
                s = share(f, "burn", i)
                check(s >= floor,
                      "%s reader, %s ms: %.1f%% of %s on burn, want >= "
                      "%.1f%%, burn() has %.1f%% of the thread's CPU (%r)"
                      % (reader, cycle, 100 * s, what, 100 * floor,
                         100 * truth, f))
            # The time split by weight: a tick the sampler was late for
            # (it competes for the CPU with the very thread it samples)
            # carries the time since the thread's previous sample.  A
            # machine busy elsewhere can starve the sampler for a whole
            # window, through every burst: a second window then decides
            # (a wrong attribution fails both).
            for attempt in (1, 2):
                prof, deltas = profile(ctx, "wall", reader, 2.5, [state],
                                       thread="dutycycle")
                f = prof.get(p.pid, {})
                sb, wb = f.get("burn", (0, 0))
                si, wi = f.get("idle", (0, 0))
                check(sb + si > (100 if ctx.sanitize else 400), "%s wall "
                      "%s: %d samples" % (reader, cycle, sb + si))
                got = wb / float(wb + wi)
                d = deltas[0]
                want = d[0] / float(d[0] + d[1])
                msg = ("%s reader, wall, %s ms: burn %.1f%% of the weight "
                       "(%.1f%% of samples), true %.1f%%"
                       % (reader, cycle, 100 * got, 100.0 * sb / (sb + si),
                          100 * want))
                print("  " + msg)
                if abs(got - want) <= wall_tolerance() or attempt == 2:
                    break
            check(abs(got - want) <= wall_tolerance(), msg)
        p.kill()
        p.wait()


def test_blocked_threads_are_off_cpu_and_gil_holders_on(ctx):
    SANITIZED[0] = ctx.sanitize
    ctx.start_daemon()
    p, _ = start_workload(ctx, "blocked")
    for reader in READERS:
        prof, _ = profile(ctx, "cpu", reader, 2)
        f = prof.get(p.pid, {})
        for name in ("in_sleep", "in_select", "in_lock"):
            check(name not in f, "%s reader: %s blocked in C yet got cpu "
                  "samples: %r" % (reader, name, f))
        # The gil reader needs the GIL to read a stack, so it gets one
        # sample per sum() call; the direct reader samples it throughout.
        want = (100 if reader == "direct" else 3) // (5 if ctx.sanitize
                                                        else 1)
        check(f.get("in_sum", (0, 0))[0] >= want, "%s reader: the thread "
              "in sum() holds the GIL and computes: %r" % (reader, f))


def thread_cpu(pid, tid):
    """utime + stime of a thread, in clock ticks."""
    with open("/proc/%d/task/%d/stat" % (pid, tid)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_two_busy_threads_of_eight_share_cpu_mode(ctx):
    SANITIZED[0] = ctx.sanitize
    ctx.start_daemon()
    p, state = start_workload(ctx, "busy2of8")
    tids = read_state(state)[1:]
    for reader in READERS:
        ctx.ctl("stop")
        ctx.ctl("reset")
        base = agent_reports(ctx)
        cpu0 = [thread_cpu(p.pid, t) for t in tids]
        ctx.ctl("start", "--rate", RATE, "--mode", "cpu", "--reader", reader)
        time.sleep(3)           # the measuring window
        ctx.ctl("stop")
        cpu = [thread_cpu(p.pid, t) - c for t, c in zip(tids, cpu0)]
        wait_stored(ctx, base)
        threads = ctx.ctl_json("show", "--pid", p.pid, "--by",
                               "thread")["threads"]
        got = {t["thread"]: t["self"] for t in threads}
        total = sum(got.values())
        busy = got.get("busy_0", 0) + got.get("busy_1", 0)
        # The gil reader gets a tick only when a busy thread lets the GIL
        # go: 30-100 a second here, whatever the rate asked.
        least = 20 if ctx.sanitize else 100 if reader == "direct" else 50
        check(total > least and
              busy >= cpu_floor() * total,
              "%s reader: cpu samples by thread %r" % (reader, got))
        # The GIL need not be fair: the samples follow each one's CPU.
        if sum(cpu) > 50:
            want = cpu[0] / float(sum(cpu))
            share = got.get("busy_0", 0) / float(busy)
            check(abs(share - want) <= 0.15, "%s reader: busy_0 got %.0f%% "
                  "of the samples and %.0f%% of the CPU (%r, cpu ticks %r)"
                  % (reader, 100 * share, 100 * want, got, cpu))
