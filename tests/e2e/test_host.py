"""The host is never harmed (tests/workloads/host.py plays the host).

- A host that closes every descriptor (or just the agent's, by number) and
  opens its own on the same numbers gets every byte of its own back: the
  agent never reads, writes or closes a descriptor that is no longer its
  own, reconnects, and does not spin.
- A host that closes every descriptor and opens its own eventfd, pipe,
  socketpair, timerfd and /proc/self/mem on the agent's old numbers gets
  every one of its signals and bytes back, none of anyone else's, and the
  agent keeps sampling: identities the host can reproduce (every eventfd
  and timerfd is the same anonymous inode, /proc/self/mem opened again is
  the same inode) never pass for the agent's.
- More threads than the agent captures per tick: every one is sampled in
  turn, the main thread every tick, the rest counted in threads_skipped.
- A relative PROFD_RUNTIME_DIR survives chdir, in the process and in its
  children; the agent names its socket once on stderr; `python -m
  profagent status` says where it connects and whether profd answers.
- profd gone for 60 s: the host runs at full speed, the agent's memory stays
  bounded and its drops are counted (the one long test; 20 s under ASan,
  where speed and memory are not measured).
"""
import json
import os
import re
import signal
import statistics
import subprocess
import time

from harness import WORKLOADS, check, once, wait_until

HOST = os.path.join(WORKLOADS, "host.py")


def result(ctx, p, timeout=120):
    rc = p.wait(timeout)
    out = ctx.output(p)
    check(rc == 0, "host exited %d:\n%s" % (rc, out[-3000:]))
    for bad in ("Traceback", "Fatal Python error", "AddressSanitizer",
                "runtime error:"):
        check(bad not in out, "%s in host output:\n%s" % (bad, out[-3000:]))
    m = re.search(r"^RESULT (.*)$", out, re.M)
    check(m, "no RESULT:\n%s" % out[-3000:])
    return json.loads(m.group(1)), out


def profd_samples(ctx, pid):
    """Samples profd has stored for pid (0 before its first batch)."""
    r = ctx.ctl("show", "--pid", pid, "--top", "0", "--format", "json",
                ok=False)
    return json.loads(r.stdout).get("samples", 0) if r.returncode == 0 else 0


def run_integrity(ctx, mode, env):
    d = os.path.join(ctx.tmp, "host-%s-%s" % (mode, len(ctx.procs)))
    os.mkdir(d)
    p = ctx.run_agent([HOST, "integrity", mode, d, "3"], env=env)
    wait_until(lambda: "CLOSED" in ctx.output(p) or p.poll() is not None,
               120, "the host to close its descriptors")
    check(p.poll() is None, "host died:\n%s" % ctx.output(p)[-3000:])
    # profd keeps getting samples after the host took the agent's numbers:
    # the agent found out and reconnected.
    s0 = profd_samples(ctx, p.pid)
    wait_until(lambda: profd_samples(ctx, p.pid) > s0 + 100, 60,
               "samples from pid %d after the close (%s)" % (p.pid, mode))
    open(os.path.join(d, "done"), "w").close()
    r, out = result(ctx, p)
    check(not r["errors"], "%s: the host's I/O was disturbed: %s\n%s"
          % (mode, r["errors"], out[-2000:]))
    check(r["records"] > 100, "%s: only %d records" % (mode, r["records"]))
    st0, st1 = r["stats0"], r["stats1"]
    check(st1["connects"] > st0["connects"],
          "%s: agent did not reconnect: %s" % (mode, st1))
    check(st1["fds_lost"] >= 1, "%s: no descriptor counted lost: %s"
          % (mode, st1))
    if r["sampler_cpu_ns"] is not None:
        frac = r["sampler_cpu_ns"] / 1e9 / r["wall"]
        limit = 0.5 if ctx.sanitize else 0.12
        check(frac < limit, "%s: sampler used %.0f%% of a core (busy loop?)"
              % (mode, 100 * frac))
    return r


@once
def test_closed_descriptors_are_never_used(ctx):
    ctx.start_daemon()
    ctx.ctl("start", "--rate", 500)
    # Each way the agent holds descriptors: the socket and the eventfd,
    # plus the direct reader's pipe or /proc/self/mem, or the gil reader.
    cases = (("closerange", {"PROFAGENT_READER": "direct",
                             "PROFAGENT_DIRECT_COPY": "pipe"}),
             ("agentfds", {"PROFAGENT_READER": "direct",
                           "PROFAGENT_DIRECT_COPY": "mem"}),
             ("closerange", {"PROFAGENT_READER": "gil"}))
    for mode, extra in cases:
        r = run_integrity(ctx, mode, ctx.agent_env(**extra))
        print("  %s %s: %d records, sampler %.1f%% of a core, fds_lost %d"
              % (mode, extra, r["records"],
                 100 * (r["sampler_cpu_ns"] or 0) / 1e9 / r["wall"],
                 r["stats1"]["fds_lost"]))
    d = ctx.ctl_json("status")
    daemon = d.get("daemon", d)
    check(daemon.get("bad_frames", 0) == 0,
          "profd got bad frames (host bytes reached it?): %s" % daemon)


def run_reuse(ctx, what, env, reader, n=300):
    d = os.path.join(ctx.tmp, "reuse-%d" % len(ctx.procs))
    os.mkdir(d)
    p = ctx.run_agent([HOST, "reuse", d, str(n)], env=env)
    wait_until(lambda: "ROUNDS-DONE" in ctx.output(p) or p.poll() is not None,
               180, "the host's rounds (%s)" % what)
    check(p.poll() is None, "%s: host died:\n%s"
          % (what, ctx.output(p)[-3000:]))
    # Samples still arrive at profd after the last round took the numbers.
    s0 = profd_samples(ctx, p.pid)
    wait_until(lambda: profd_samples(ctx, p.pid) > s0 + 100, 60,
               "samples from pid %d after the rounds (%s)" % (p.pid, what))
    open(os.path.join(d, "done"), "w").close()
    r, out = result(ctx, p)
    overlap = 0
    for k, rnd in enumerate(r["rounds"]):
        check(not rnd["errors"], "%s, round %d: %s\n%s"
              % (what, k, rnd["errors"], out[-2000:]))
        for kind, got in rnd["taken"].items():
            want = n * rnd["count"][kind]
            check(got == want, "%s, round %d: the host took back %d of its "
                  "%d %s signals (agent had %s, host got %s)"
                  % (what, k, got, want, kind, rnd["agent_fds"],
                     rnd["reused"]))
        overlap += 1 if any(rnd["reused"].values()) else 0
    r["overlap"] = overlap
    check(r["child_ok"], "%s: a fork child lost the host's descriptors"
          % what)
    check(not r["errors"], "%s: %s" % (what, r["errors"]))
    st1, st2 = r["stats1"], r["stats2"]
    check(st2["reader"] == reader, "%s: reader %s in use, not %s"
          % (what, st2["reader"], reader))
    check(st1["fds_lost"] >= len(r["rounds"]), "%s: %d descriptors counted "
          "lost in %d rounds: %s" % (what, st1["fds_lost"], len(r["rounds"]),
                                     st1))
    check(st2["samples"] > st1["samples"] and st2["connected"],
          "%s: the agent stopped sampling: %s -> %s" % (what, st1, st2))
    return r


@once
def test_reused_numbers_keep_their_signals(ctx):
    ctx.start_daemon()
    ctx.ctl("start", "--rate", 500)
    cases = [("gil", "gil", {"PROFAGENT_READER": "gil"})]
    cases += [("direct %s" % how, "direct", {"PROFAGENT_READER": "direct",
                                             "PROFAGENT_DIRECT_COPY": how})
              for how in ("pvr", "pipe", "mem")]
    for what, reader, extra in cases:
        # The rounds prove something only if the host got the agent's
        # numbers in some; in others the agent makes new descriptors
        # between the host's closerange() and its opens (it notices the
        # loss at once) and takes a number first: a fresh host, up to 4.
        for attempt in range(4):
            r = run_reuse(ctx, what, ctx.agent_env(**extra), reader)
            print("  %s: %s" % (what, "; ".join(
                "agent %s -> host %s" % (x["agent_fds"], {
                    k: v for k, v in x["reused"].items() if v})
                for x in r["rounds"])))
            if r["overlap"] >= 1:
                break
        check(r["overlap"] >= 1, "%s: the host got the agent's numbers in "
              "none of %d rounds, 4 hosts" % (what, len(r["rounds"])))


def test_threads_past_the_cap_all_sampled(ctx):
    n = 300
    ctx.start_daemon()
    for reader in ("direct", "gil"):
        ctx.ctl("reset")
        ctx.ctl("start", "--rate", 100, "--mode", "wall")
        # The host runs until told (d/done), so that the window below is
        # always inside its life however slow the machine.
        d = os.path.join(ctx.tmp, "threads-%s" % reader)
        os.mkdir(d)
        p = ctx.run_agent([HOST, "threads", str(n), "300", d],
                          env=ctx.agent_env(PROFAGENT_READER=reader))
        wait_until(lambda: "STARTED" in ctx.output(p) or p.poll() is not None,
                   120, "%d threads to start" % n)
        check(p.poll() is None, "%s: host died:\n%s"
              % (reader, ctx.output(p)[-3000:]))

        def stats():
            a = [x for x in ctx.ctl_json("status")["agents"]
                 if x["pid"] == p.pid and x.get("stats")]
            return a[0]["stats"] if a and a[0]["stats"]["ticks"] else None
        first = wait_until(stats, 30, "agent stats")
        # Reports come every second: the one after the first seen after
        # STARTED was made after STARTED.
        s0 = wait_until(lambda: (stats() or first)["ticks"] > first["ticks"]
                        and stats(), 30, "a stats report after STARTED")
        time.sleep(2)
        s1 = wait_until(lambda: (stats() or s0)["ticks"] > s0["ticks"] and stats(),
                        30,
                        "a stats report after the window")
        open(os.path.join(d, "done"), "w").close()
        r_rc = p.wait(120)
        check(r_rc == 0, "%s: host exited %d:\n%s"
              % (reader, r_rc, ctx.output(p)[-3000:]))
        ticks = s1["ticks"] - s0["ticks"]
        # Stacks really captured: a late tick's repeats (it stands in for
        # the ticks it missed) left out.
        real = (s1["samples"] - s1["samples_made_up"]) - \
            (s0["samples"] - s0["samples_made_up"])
        seen = real + (s1["threads_skipped"] - s0["threads_skipped"]) + \
            (s1["invalid"] - s0["invalid"])
        check(ticks > 0, "%s: no ticks" % reader)
        check(n < 256 or s1["threads_skipped"] > 0,
              "%s: nothing counted skipped" % reader)
        # Every tick accounts for each of the n + 1 threads once: sampled,
        # skipped or invalid.  The direct reader stops walking the thread
        # list at a torn thread state (counted invalid, the rest of the list
        # not seen), which a loaded machine hits now and then: allow some.
        per_tick = seen / ticks
        check(real / ticks <= 256,
              "%s: more samples a tick than AGENT_MAX_THREADS" % reader)
        check(0.75 * (n + 1) <= per_tick <= n + 1 + 3,
              "%s: %.1f threads accounted a tick, want %d: %s -> %s"
              % (reader, per_tick, n + 1, s0, s1))
        # The host has exited: its last batch is stored once profd has
        # seen it go (in order on one stream).
        ctx.wait_departed(p.pid)
        fn = {f["function"]: f for f in
              ctx.ctl_json("show", "--pid", p.pid, "--top", "0")["functions"]}
        missing = [k for k in range(n) if "thread_own_function_%d" % k not in fn]
        check(not missing, "%s: %d threads never sampled, e.g. %s"
              % (reader, len(missing), missing[:5]))
        check("main_thread_own_function" in fn,
              "%s: main thread never sampled" % reader)
        print("  %s: %.1f threads a tick over %d ticks, %d skipped in all"
              % (reader, per_tick, ticks, s1["threads_skipped"]))


@once
def test_relative_runtime_dir_survives_chdir(ctx):
    ctx.start_daemon()
    ctx.ctl("start", "--rate", 200)
    env = ctx.agent_env(PROFD_RUNTIME_DIR="rt")
    sock = ctx.sock("agent.sock")
    code = (
        "import os, subprocess, sys, time\n"
        "os.chdir('/')\n"
        "print('ENV', os.environ['PROFD_RUNTIME_DIR'], flush=True)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    t = time.monotonic()\n"
        "    while time.monotonic() - t < 3: pass\n"
        "    os._exit(0)\n"
        "c = subprocess.Popen([sys.executable, '-c',\n"
        "    'import time\\nt = time.monotonic()\\n'\n"
        "    'while time.monotonic() - t < 3: pass'])\n"
        "print('KIDS', pid, c.pid, flush=True)\n"
        "t = time.monotonic()\n"
        "while time.monotonic() - t < 3: pass\n"
        "c.wait(); os.waitpid(pid, 0)\n")
    p = ctx.run_agent(["-c", code], env=env, cwd=ctx.tmp)
    wait_until(lambda: "KIDS" in ctx.output(p) or p.poll() is not None, 60,
               "the host to start its children")
    m = re.search(r"KIDS (\d+) (\d+)", ctx.output(p))
    check(m, "no children:\n%s" % ctx.output(p))
    forked, spawned = int(m.group(1)), int(m.group(2))

    def attached():
        pids = {a["pid"] for a in ctx.ctl_json("status")["agents"]
                if a.get("connected")}
        return {p.pid, forked, spawned} <= pids
    wait_until(attached, 30, "host, fork child and exec'd child at profd")
    check(p.wait(60) == 0, "host failed:\n%s" % ctx.output(p))
    out = ctx.output(p)
    check("ENV %s" % ctx.rt in out, "env not made absolute:\n%s" % out)
    lines = [l for l in out.splitlines() if ": profd socket " in l]
    want = "profd socket %s: profd answers" % sock
    check(len(lines) == 2 and all(want in l for l in lines),
          "want one line from the host and one from the exec'd child "
          "(none from the fork child), naming %s:\n%s" % (sock, out))
    check(any(l.startswith("profagent[%d]:" % p.pid) for l in lines) and
          any(l.startswith("profagent[%d]:" % spawned) for l in lines),
          "the lines are not the host's and the exec'd child's:\n%s" % out)

    # status from another process: the path, absolute, and profd answers.
    r = subprocess.run([ctx.python, "-m", "profagent", "status"], env=env,
                       cwd=ctx.tmp, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True,
                       timeout=60)
    check(r.returncode == 0 and "socket: %s" % sock in r.stdout and
          "profd: answers" in r.stdout and "not attached" in r.stdout,
          "status: %d\n%s" % (r.returncode, r.stdout))
    # ... and from a process with the agent attached: its counters too.
    r = subprocess.run([ctx.python, "-m", "profagent", "run", "--",
                        ctx.python, "-m", "profagent", "status"], env=env,
                       cwd=ctx.tmp, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True,
                       timeout=60)
    check(r.returncode == 0 and "agent: attached" in r.stdout and
          "threads_skipped" in r.stdout and "fds_lost" in r.stdout,
          "attached status: %d\n%s" % (r.returncode, r.stdout))
    # No profd: status says so and exits 1.
    r = subprocess.run([ctx.python, "-m", "profagent", "status",
                        "--runtime-dir", os.path.join(ctx.tmp, "nowhere")],
                       env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True,
                       timeout=60)
    check(r.returncode == 1 and "does not answer" in r.stdout,
          "status without profd: %d\n%s" % (r.returncode, r.stdout))


@once
def test_profd_gone_for_a_minute(ctx):
    d = os.path.join(ctx.tmp, "work")
    os.mkdir(d)
    # Under ASan the speed and RSS checks are off (an instrumented agent
    # says nothing about the real one's cost): 20 s show the drops.
    gone_s = 20 if ctx.sanitize else 60
    run_s = str(gone_s + 15)
    ctx.start_daemon()
    ctx.ctl("start", "--rate", 1000)
    # The same work without the agent, at the same time, so that both see
    # the same machine (other load comes and goes).
    base_env = ctx.agent_env()
    base_env.pop("PROFAGENT_AUTO", None)
    b = ctx.spawn([ctx.python, HOST, "work", d, run_s], env=base_env)
    # The smallest buffer, so that it fills and drops within the minute.
    p = ctx.run_agent([HOST, "work", d, run_s],
                      env=ctx.agent_env(PROFAGENT_BUFFER_BYTES=65536))
    wait_until(lambda: profd_samples(ctx, p.pid) > 100, 60,
               "samples before profd goes")
    ctx.stop_daemon(signal.SIGKILL)
    t_kill = time.monotonic()
    r, out = result(ctx, p, timeout=300)
    rb, _ = result(ctx, b, timeout=300)
    check(rb["stats"] is None, "baseline had the agent attached")
    check(time.monotonic() - t_kill >= gone_s - 5, "host ended too early")
    base = statistics.median(rb["rates"][-gone_s:])
    rates = r["rates"]
    gone = rates[-gone_s:]
    med = statistics.median(gone)
    st = r["stats"]
    # Two processes on a busy 2-CPU machine get unequal shares of it, so
    # the host's speed is its work per second of its own thread's CPU
    # (what the agent could spoil: locks, caches, signals), and what the
    # agent costs is its threads' CPU, per second of the window.
    def per_cpu(res):
        return statistics.median(n / c for n, c in
                                 zip(res["rates"][-gone_s:],
                                     res["cpu"][-gone_s:]) if c > 0)
    base_eff, eff = per_cpu(rb), per_cpu(r)
    agent_cpu = statistics.median(r["other"][-gone_s:])
    print("  work/s: baseline %.0f, profd gone %.0f (%.0f%%); per CPU second"
          " %.0f vs %.0f (%.0f%%); the agent's threads %.1f%% of a core;"
          " max gap %.3f s; RSS %d -> %d KiB; dropped %d, connects %d"
          % (base, med, 100 * med / base, eff, base_eff,
             100 * eff / base_eff, 100 * agent_cpu, r["max_gap"],
             r["rss"][-gone_s] // 1024, r["rss"][-1] // 1024,
             st["dropped"], st["connects"]))
    # An instrumented sampler says nothing about the real one's cost.
    check(ctx.sanitize or eff >= 0.85 * base_eff,
          "host slowed: %.0f work a CPU second vs %.0f without the agent"
          % (eff, base_eff))
    check(ctx.sanitize or agent_cpu < 0.15, "the agent used %.1f%% of a "
          "core with profd gone" % (100 * agent_cpu))
    check(r["max_gap"] < 2.0, "host stalled %.2f s" % r["max_gap"])
    check(st["profiling"] and not st["connected"], "agent state: %s" % st)
    check(st["dropped"] > 0, "no drops counted: %s" % st)
    if not ctx.sanitize:
        growth = r["rss"][-1] - r["rss"][-gone_s]
        check(growth < 8 << 20, "RSS grew %d KiB with profd gone"
              % (growth // 1024))
