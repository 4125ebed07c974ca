"""The agent in a real interpreter: attach, run, survive."""
import os
import signal
import statistics
import subprocess
import time

from harness import WORKLOADS, check, once, wait_until


def test_run_exits_with_the_commands_code(ctx):
    r = subprocess.run([ctx.python, "-m", "profagent", "run", "--",
                        ctx.python, "-c", "import sys; sys.exit(3)"],
                       env=ctx.agent_env(), timeout=60)
    check(r.returncode == 3, "exit code %d, want 3" % r.returncode)


def test_run_reports_a_missing_command(ctx):
    r = subprocess.run([ctx.python, "-m", "profagent", "run", "--",
                        "/nonexistent/cmd"], env=ctx.agent_env(),
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    check(r.returncode == 127, "exit code %d, want 127" % r.returncode)
    check("/nonexistent/cmd" in r.stderr, "no useful error: %r" % r.stderr)


def test_host_runs_normally_without_daemon(ctx):
    p = ctx.run_agent([os.path.join(WORKLOADS, "workload.py"), "--rounds", "300"])
    rc = p.wait(120)
    out = ctx.output(p)
    check(rc == 0 and "checksum=" in out, "workload failed (%d): %s" % (rc, out))
    check("Traceback" not in out, out)


def test_late_process_joins_running_profile(ctx):
    ctx.start_daemon()
    ctx.ctl("start", "--rate", "250")
    p = ctx.run_agent([os.path.join(WORKLOADS, "workload.py"), "--seconds", "8"])

    def sampled():
        show = ctx.ctl_json("show")
        return [x for x in show["processes"] if x["pid"] == p.pid and x["samples"] > 50]
    wait_until(sampled, 20, "the late process's samples")
    st = ctx.ctl_json("status")
    agent = [a for a in st["agents"] if a["pid"] == p.pid]
    check(agent and agent[0]["connected"] and agent[0]["samples"] > 0,
          "status lacks the agent: %r" % st["agents"])
    for key in ("pid", "connected", "samples", "dropped"):
        check(key in agent[0], "status agent has no %r" % key)
    p.kill()


def test_start_by_pid_samples_only_that_process(ctx):
    ctx.start_daemon()
    # Both outlive the waits below however slow the machine (killed at the
    # end).
    a = ctx.run_agent([os.path.join(WORKLOADS, "workload.py"), "--seconds", "120"])
    b = ctx.run_agent([os.path.join(WORKLOADS, "workload.py"), "--seconds", "120"])

    def both():
        st = ctx.ctl_json("status")
        return {a.pid, b.pid} <= {x["pid"] for x in st["agents"] if x["connected"]}
    wait_until(both, 20, "two agents")
    ctx.ctl("start", "--pid", a.pid, "--rate", "200")

    def got():
        show = ctx.ctl_json("show", "--pid", a.pid, "--pid", b.pid)
        return {x["pid"]: x["samples"] for x in show["processes"]}

    def stats(pid):
        a = [x for x in ctx.ctl_json("status")["agents"] if x["pid"] == pid]
        check(a and a[0]["connected"], "agent of pid %d gone" % pid)
        return a[0].get("stats") or {}
    # b's reports come every second, each one's bytes_sent counting the one
    # before.  Of those after the start, the first may have been made
    # before profd sent anything, the second before b read a CONFIG sent
    # just then; the third comes after a second of sampling, had b been
    # told to sample.
    reports = [stats(b.pid).get("bytes_sent")]

    def b_reported():
        n = stats(b.pid)
        if n.get("bytes_sent") != reports[-1]:
            reports.append(n.get("bytes_sent"))
        return len(reports) > 3 and n
    wait_until(lambda: got().get(a.pid, 0) > 0, 30,
               "samples from the started pid")
    sb = wait_until(b_reported, 30, "3 stats reports from the other pid")
    check(sb["ticks"] == 0 and sb["samples"] == 0,
          "the other pid sampled: %r" % sb)
    shown = got()
    check(shown.get(b.pid, 0) == 0, "samples from the other pid: %r" % shown)
    only_b = ctx.ctl_json("show", "--pid", b.pid)
    check(only_b["samples"] == 0, "--pid filter leaks: %r" % only_b["samples"])
    # A pid profd does not know: a refused request, exit 1.
    r = ctx.ctl("start", "--pid", "999999", ok=False)
    check(r.returncode == 1 and "999999" in r.stderr,
          "unknown pid: exit %d, %r" % (r.returncode, r.stderr))
    a.kill()
    b.kill()


def test_attach_in_code(ctx):
    ctx.start_daemon()
    ctx.ctl("start", "--rate", "200")
    code = ("import sys; sys.path.insert(0, %r); import profagent, workload; "
            "profagent.attach(service='incode'); workload.work(0, 20, 70, 3)"
            % WORKLOADS)
    p = ctx.spawn([ctx.python, "-c", code])

    def seen():
        show = ctx.ctl_json("show")
        return [x for x in show["processes"] if x["pid"] == p.pid and x["samples"] > 20]
    wait_until(seen, 20, "samples from profagent.attach()")
    st = ctx.ctl_json("status")
    svc = [x.get("service") for x in st["agents"] if x["pid"] == p.pid]
    check(svc == ["incode"], "service not reported: %r" % svc)
    check(p.wait(60) == 0, "process failed: %s" % ctx.output(p))


def test_folded_and_table_output(ctx):
    ctx.start_daemon()
    ctx.ctl("start", "--rate", "300")
    p = ctx.run_agent([os.path.join(WORKLOADS, "workload.py"), "--seconds", "3"])
    wait_until(lambda: ctx.ctl_json("show")["samples"] > 100, 20, "samples")
    folded = ctx.ctl("show", "--format", "folded").stdout
    lines = [l for l in folded.splitlines() if l]
    check(lines, "no folded output")
    total = 0
    for l in lines:
        stack, _, count = l.rpartition(" ")
        check(stack and count.isdigit(), "bad folded line %r" % l)
        total += int(count)
    check(any("leaf_a" in l and "descend" in l for l in lines),
          "no descend;...;leaf_a stack in folded output")
    table = ctx.ctl("show", "--top", "5").stdout
    check("leaf_a" in table and "%" in table, "table lacks leaf_a:\n" + table)
    p.wait(60)


def test_agent_frames_never_show_in_stacks(ctx):
    """The wrapper profagent puts around every thread's run (and the rest of
    its Python: sitecustomize, fork hooks) is hidden by both readers."""
    ctx.start_daemon()
    ctx.ctl("start", "--rate", "300")
    for reader in ("gil", "direct"):
        ctx.ctl("reset")
        p = ctx.run_agent([os.path.join(WORKLOADS, "workload.py"),
                           "--seconds", "2", "--threads", "2"],
                          env=ctx.agent_env(PROFAGENT_READER=reader))

        def thread_stacks():
            folded = ctx.ctl("show", "--format", "folded").stdout
            stacks = [l.rpartition(" ")[0].split(";")
                      for l in folded.splitlines() if l]
            return [s for s in stacks if "_bootstrap (" in s[0] and
                    "/threading.py:" in s[0]]
        stacks = wait_until(thread_stacks, 20, "thread stacks (%s)" % reader)
        check(any(f.split(" (")[0].endswith("_bootstrap_inner") and
                  "/threading.py:" in f for s in stacks for f in s),
              "threading's own frames lost (%s): %r" % (reader, stacks[:3]))
        check(p.wait(60) == 0, "workload failed: %s" % ctx.output(p))
        frames = set(f for l in ctx.ctl("show", "--format", "folded")
                     .stdout.splitlines() if l
                     for f in l.rpartition(" ")[0].split(";"))
        ours = sorted(f for f in frames if "/profagent/" in f)
        check(not ours, "agent frames in stacks (%s): %r" % (reader, ours))


# The sampler's clock, the same for every interpreter.
@once
def test_jitter_keeps_the_mean_rate(ctx):
    ctx.start_daemon()
    ctx.ctl("start", "--rate", "500", "--jitter", "40")
    check(ctx.ctl_json("status")["jitter_pct"] == 40, "status lacks jitter_pct 40")
    # A twin without jitter, at the same time: a loaded machine makes both
    # miss ticks alike, so the jittered one is measured against it.
    work = os.path.join(WORKLOADS, "workload.py")
    p = ctx.run_agent([work, "--seconds", "60"])
    q = ctx.run_agent([work, "--seconds", "60"])

    def attached():
        st = {a["pid"] for a in ctx.ctl_json("status")["agents"]
              if a["connected"]}
        return {p.pid, q.pid} <= st
    wait_until(attached, 60, "both agents to attach")
    ctx.ctl("start", "--rate", "500", "--jitter", "0", "--pid", q.pid)

    def rates():
        a = {x["pid"]: x["stats"].get("achieved_mhz", 0) / 1000.0
             for x in ctx.ctl_json("status")["agents"]
             if x["pid"] in (p.pid, q.pid) and x.get("stats")}
        return len(a) == 2 and all(a.values()) and a
    # The achieved rate spans the last 2 s: let a full window pass, then
    # average four readings a second apart.
    wait_until(rates, 30, "achieved rates")
    time.sleep(2.5)
    reads = []
    for _ in range(4):
        reads.append(wait_until(rates, 30, "achieved rates"))
        time.sleep(1)
    jit = statistics.mean(r[p.pid] for r in reads)
    plain = statistics.mean(r[q.pid] for r in reads)
    # More runnable threads than twice the CPUs: each sampler is late at
    # its own times, and the two drift apart (said, and looser).
    load = os.getloadavg()[0]
    lo, hi = (0.75, 1.25) if load > 2 * (os.cpu_count() or 1) else (0.8, 1.04)
    print("  achieved %.0f Hz with 40%% jitter, %.0f Hz without, at 500 Hz"
          " (load %.1f: %.2f-%.2f)" % (jit, plain, load, lo, hi))
    check(plain > 0 and lo <= jit / plain <= hi,
          "achieved %.0f Hz with 40%% jitter, %.0f Hz without, at 500 Hz"
          % (jit, plain))
    r = ctx.ctl("start", "--jitter", "60", ok=False)
    check(r.returncode != 0, "jitter 60% accepted")
    for x in (p, q):
        x.kill()


def run_startup(ctx, ms, service, **env):
    """startup.py under `python -m profagent run`: MS milliseconds of CPU in
    burn() from its first line, then exit.  Returns (pid, its run time in
    ms from that first line), once profd has seen its agent go."""
    state = os.path.join(ctx.tmp, "%s.run" % service)
    p = ctx.run_agent([os.path.join(WORKLOADS, "startup.py"), str(ms), state],
                      service=service, env=ctx.agent_env(**env))
    check(p.wait(60) == 0, "startup.py failed: %s" % ctx.output(p))
    ctx.wait_departed(p.pid)
    with open(state) as f:
        return p.pid, int(f.read()) / 1e6


def check_sampled_from_the_start(ctx, pid, run_ms, what):
    """At 1 kHz, the samples of pid cover its whole run: their wall weights
    (each the time since that thread's previous sample, so a missed tick is
    still covered) add up to 90% of its run time, its leaf burn() has them,
    and their count is 90% of its milliseconds; on a machine with more
    runnable threads than twice its CPUs, or with a sanitized agent, the
    sampler misses ticks of its own: the count is then held to half (said),
    the weights still to 90%."""
    show = ctx.ctl_json("show", "--pid", pid, "--top", "0")
    burn = [f for f in show["functions"] if f["function"] == "burn"]
    loaded = ctx.sanitize or os.getloadavg()[0] > 2 * (os.cpu_count() or 1)
    want = 0.5 if loaded else 0.9
    print("  %s: %d samples, %.0f ms of weight, in a run of %.0f ms%s"
          % (what, show["samples"], show["weight_us"] / 1e3, run_ms,
             " (loaded: count held to half)" if loaded else ""))
    check(show["weight_us"] >= 0.9 * run_ms * 1000,
          "%s: samples cover %.0f ms of a %.0f ms run"
          % (what, show["weight_us"] / 1e3, run_ms))
    check(show["samples"] >= want * run_ms,
          "%s: %d samples at 1 kHz in a %.0f ms run"
          % (what, show["samples"], run_ms))
    check(burn and burn[0]["self"] >= 0.8 * show["samples"],
          "%s: the leaf burn() has %r of %d samples"
          % (what, burn[0]["self"] if burn else 0, show["samples"]))


def test_short_program_is_sampled_from_its_start(ctx):
    """A 300 ms program at 1 kHz: sampled from the agent's first tick (the
    settings profd publishes), not from its first CONFIG; with profiling
    off, not at all."""
    ctx.start_daemon()
    ctx.ctl("start", "--rate", "1000")
    pid, run_ms = run_startup(ctx, 300, "short")
    check_sampled_from_the_start(ctx, pid, run_ms, "profiling on")
    ctx.ctl("stop")
    pid, run_ms = run_startup(ctx, 300, "off")
    show = ctx.ctl_json("show", "--pid", pid)
    agent = [a for a in ctx.ctl_json("status")["agents"] if a["pid"] == pid]
    check(show["samples"] == 0, "profiling off: %d samples" % show["samples"])
    check(agent and agent[0]["stats"].get("samples", 0) == 0 and
          agent[0]["stats"].get("ticks", 0) == 0,
          "profiling off: the agent sampled: %r" % (agent and agent[0]["stats"]))


def test_published_settings_are_used_before_profd_answers(ctx):
    """profd answers no hello for the first 300 ms of a 600 ms program
    (stopped): the agent samples from its start on the settings profd
    published, keeps the samples and sends them once the CONFIG comes."""
    ctx.start_daemon()
    ctx.ctl("start", "--rate", "1000")
    state = os.path.join(ctx.tmp, "late.run")
    ctx.daemon.send_signal(signal.SIGSTOP)
    try:
        p = ctx.run_agent([os.path.join(WORKLOADS, "startup.py"), "600",
                           state], service="late")
        time.sleep(0.3)
    finally:
        ctx.daemon.send_signal(signal.SIGCONT)
    check(p.wait(60) == 0, "startup.py failed: %s" % ctx.output(p))
    ctx.wait_departed(p.pid)
    with open(state) as f:
        run_ms = int(f.read()) / 1e6
    check_sampled_from_the_start(ctx, p.pid, run_ms, "CONFIG late")
    agent = [a for a in ctx.ctl_json("status")["agents"] if a["pid"] == p.pid]
    check(agent and agent[0]["stats"].get("discarded", 0) == 0,
          "samples discarded: %r" % (agent and agent[0]["stats"]))


def test_config_that_differs_from_the_published_settings_wins(ctx):
    """A settings file that says profiling on while profd has it off (one
    left by an earlier profd, say), and profd slow to answer: the agent
    samples from its start on the file, then its CONFIG says off and those
    samples are discarded (counted), never sent."""
    ctx.start_daemon()
    with open(ctx.sock("sampling"), "w") as f:
        f.write("profd-sampling 1\nprofiling on\nrate_hz 1000\nmode wall\n"
                "reader default\njitter_pct 0\nmax_overhead_bp none\n")
    state = os.path.join(ctx.tmp, "stale.run")
    ctx.daemon.send_signal(signal.SIGSTOP)
    try:
        p = ctx.run_agent([os.path.join(WORKLOADS, "startup.py"), "600",
                           state], service="stale")
        time.sleep(0.3)
    finally:
        ctx.daemon.send_signal(signal.SIGCONT)
    check(p.wait(60) == 0, "startup.py failed: %s" % ctx.output(p))
    ctx.wait_departed(p.pid)
    show = ctx.ctl_json("show", "--pid", p.pid)
    st = [a for a in ctx.ctl_json("status")["agents"]
          if a["pid"] == p.pid][0]["stats"]
    check(show["samples"] == 0, "%d samples stored with profiling off"
          % show["samples"])
    check(st.get("discarded", 0) > 0 and
          st["discarded"] + st["dropped"] == st["samples"],
          "samples %d, discarded %d, dropped %d" % (
              st["samples"], st.get("discarded", 0), st["dropped"]))
