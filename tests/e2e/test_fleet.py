"""The required end-to-end case: a parent and 4 workers, merged."""
import os
import signal

from harness import WORKLOADS, TestFailure, check, wait_until


def read_pids(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return [int(x) for x in f.read().split()]


def proc_samples(show):
    return {p["pid"]: p["samples"] for p in show.get("processes", [])}


def reports(ctx, pids):
    """{pid: its agent's last stats report, and "received": the samples
    profd took from it}"""
    return {a["pid"]: dict(a["stats"], received=a["samples"])
            for a in ctx.ctl_json("status")["agents"] if a["pid"] in pids}


def sampler_cpu(pid):
    """CPU time of pid's sampler thread (named profagent), clock ticks."""
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                st = f.read()
        except OSError:
            continue
        if st[st.index("(") + 1:st.rindex(")")] == "profagent":
            f = st[st.rindex(")") + 2:].split()
            return int(f[11]) + int(f[12])
    raise TestFailure("pid %d has no profagent thread" % pid)


def leaf_split(show):
    self_ = {f["function"]: f["self"] for f in show["functions"]}
    a, b = self_.get("leaf_a", 0), self_.get("leaf_b", 0)
    check(a + b > 0, "no samples in leaf_a or leaf_b: %s" % show["functions"][:5])
    return 100.0 * a / (a + b), a + b


def fleet_case(ctx, start):
    ctx.start_daemon()
    pidfile = os.path.join(ctx.tmp, "pids")
    # The workers work until told (done), so that profd is killed while
    # they sample however slow the machine.
    done = os.path.join(ctx.tmp, "done")
    fleet = ctx.run_agent([os.path.join(WORKLOADS, "fleet.py"), "--workers", "4",
                           "--start", start, "--seconds", "300",
                           "--pidfile", pidfile, "--done", done],
                          service="fleet")
    pids = wait_until(lambda: read_pids(pidfile), 30, "the workers to start")
    check(len(pids) == 4, "expected 4 worker pids, got %r" % pids)

    def attached():
        st = ctx.ctl_json("status")
        live = {a["pid"] for a in st["agents"] if a["connected"]}
        return set(pids) <= live
    wait_until(attached, 20, "4 workers to attach")

    ctx.ctl("start", "--rate", "200")
    # About 2 s at 200 Hz on an idle machine, as long as it takes on a
    # loaded one; 1,600 samples put one sigma of the split at 1.2 points.
    wait_until(lambda: all(proc_samples(ctx.ctl_json("show")).get(p, 0) >= 400
                           for p in pids), 60, "400 samples from every worker")
    show = ctx.ctl_json("show", "--top", "0")
    got = proc_samples(show)
    missing = [p for p in pids if got.get(p, 0) == 0]
    check(not missing, "workers without samples: %r (have %r)" % (missing, got))
    check(show["samples"] == sum(got.values()),
          "total %d != sum over processes %d" % (show["samples"], sum(got.values())))
    split, n = leaf_split(show)
    check(abs(split - 70) <= 5, "leaf_a share %.1f%% of %d samples, want 70+-5"
          % (split, n))
    for f in show["functions"]:
        check(f["self"] <= f["total"] <= show["samples"],
              "bad counts for %r" % f)
    descend = [f for f in show["functions"] if f["function"] == "descend"]
    check(descend and descend[0]["total"] <= show["samples"],
          "recursion must count once per sample: %r" % descend)

    st = ctx.ctl_json("status")
    check(st["profiling"] is True, "status says not profiling")

    ctx.ctl("stop")
    # Each agent (the workers, their parent, a spawn start's helper) says
    # in its reports, one a second, when it stopped: two in a row with the
    # same ticks (while it samples, ticks come between any two).  Then
    # profd has every sample it counted.
    procs = {a["pid"] for a in ctx.ctl_json("status")["agents"]
             if a["connected"]}
    seen = {p: [] for p in procs}

    def stopped():
        for p, r in reports(ctx, procs).items():
            if not seen[p] or r["bytes_sent"] != seen[p][-1]["bytes_sent"]:
                seen[p].append(r)
        return all(len(s) >= 2 and s[-1]["ticks"] == s[-2]["ticks"] and
                   s[-1]["received"] >= s[-1]["samples"] - s[-1]["dropped"]
                   - s[-1]["discarded"] for s in seen.values())
    wait_until(stopped, 60, "every agent to stop sampling after stop")
    s1 = ctx.ctl_json("show")["samples"]
    after_stop = {p: s[-1] for p, s in seen.items()}

    # One report more from each: whatever it sampled since would show in
    # its ticks and be stored.
    def reported_again():
        r = reports(ctx, procs)
        return all(r[p]["bytes_sent"] != after_stop[p]["bytes_sent"]
                   for p in procs) and r
    r2 = wait_until(reported_again, 30, "a report more from every agent")
    s2 = ctx.ctl_json("show")["samples"]
    check(s2 == s1, "samples still flow after stop: %d -> %d" % (s1, s2))
    ticked = {p: (after_stop[p]["ticks"], r2[p]["ticks"]) for p in procs
              if r2[p]["ticks"] != after_stop[p]["ticks"]}
    check(not ticked, "agents still ticking after stop: %r" % ticked)
    st = ctx.ctl_json("status")
    check(st["profiling"] is False, "status still says profiling")

    # Every worker samples again, then profd goes.
    before = proc_samples(ctx.ctl_json("show"))
    ctx.ctl("start", "--rate", "200")
    wait_until(lambda: all(proc_samples(ctx.ctl_json("show")).get(p, 0) >
                           before.get(p, 0) for p in pids), 60,
               "every worker to sample again")
    cpu = {p: sampler_cpu(p) for p in pids}
    ctx.daemon.kill()
    ctx.daemon.wait(5)
    # The workers go on sampling with profd gone: each one's sampler
    # thread runs on.
    wait_until(lambda: all(sampler_cpu(p) > cpu[p] for p in pids), 60,
               "every worker's sampler to run with profd gone")
    open(done, "w").close()
    rc = fleet.wait(90)
    out = ctx.output(fleet)
    check(rc == 0, "fleet exited %d after profd was killed:\n%s" % (rc, out[-2000:]))
    check(out.count("checksum=") == 4, "not every worker finished:\n%s" % out[-2000:])
    check("Traceback" not in out, "a traceback in the workers:\n%s" % out[-2000:])


def test_fork_workers_merge_with_true_split(ctx):
    fleet_case(ctx, "fork")


def test_spawn_workers_merge_with_true_split(ctx):
    fleet_case(ctx, "spawn")
