"""The store: views, filters, time buckets, retention, the memory cap,
reclaiming, process instances.  Most cases drive profd with fakeagent (a
chosen pid, start time and sample times); the real-agent cases are in
test_views.py."""
import json
import os
import time

from fakeagent import FakeAgent
from harness import WORKLOADS, check, once, wait_until

NS = 1000000000


def daemon_stat(ctx, name):
    return ctx.ctl_json("status")["daemon"][name]


def wait_stored(ctx, n, timeout=10):
    wait_until(lambda: daemon_stat(ctx, "samples_stored") >= n, timeout,
               "%d samples stored" % n)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def two_services(ctx):
    """api: 2 threads, recursion; batch: one thread.  Returns the agents."""
    a = FakeAgent(ctx.rt, pid=4001, service="api", argv=["api.py", "--port", "80"])
    w1, w2 = a.thread("worker-1"), a.thread("worker-2")
    rec = a.stack(["main", "rec", "rec", "rec", "leaf"])
    other = a.stack(["main", "serve", "io_wait"])
    a.samples(rec, w1, 60)
    a.samples(other, w2, 40, flags=0)          # off-CPU
    b = FakeAgent(ctx.rt, pid=4002, service="batch", argv=["batch.py"])
    mt = b.thread("MainThread")
    crunch = b.stack(["main", "crunch"])
    b.samples(crunch, mt, 100)
    a.flush()
    b.flush()
    wait_stored(ctx, 200)
    return a, b


@once
def test_views_by_every_dimension(ctx):
    ctx.start_daemon()
    a, b = two_services(ctx)
    fn = ctx.ctl_json("show", "--by", "function")
    check(fn["samples"] == 200, "samples %r" % fn["samples"])
    rows = {r["function"]: r for r in fn["functions"]}
    check(rows["rec"]["total"] == 60 and rows["rec"]["self"] == 0,
          "recursion counted more than once: %r" % rows["rec"])
    check(rows["leaf"]["self"] == 60 and rows["main"]["total"] == 200,
          "self/total wrong: %r" % rows)
    check(rows["crunch"]["self_us"] == 100 * 10000, "time weight %r" % rows["crunch"])
    lines = ctx.ctl_json("show", "--by", "line")["lines"]
    check(all(r["line"] == 10 for r in lines), "executing line: %r" % lines[:3])
    files = ctx.ctl_json("show", "--by", "file")["files"]
    check([r["file"] for r in files] == ["fake.py"], "files %r" % files)
    threads = {(r["pid"], r["thread"]): r["self"]
               for r in ctx.ctl_json("show", "--by", "thread")["threads"]}
    check(threads == {(4001, "worker-1"): 60, (4001, "worker-2"): 40,
                      (4002, "MainThread"): 100}, "threads %r" % threads)
    procs = {r["pid"]: r for r in ctx.ctl_json("show", "--by", "process")["processes"]}
    check(procs[4001]["samples"] == 100 and procs[4002]["service"] == "batch",
          "processes %r" % procs)
    svc = {r["service"]: r["self"] for r in ctx.ctl_json("show", "--by", "service")["services"]}
    check(svc == {"api": 100, "batch": 100}, "services %r" % svc)
    # Filters.
    check(ctx.ctl_json("show", "--service", "api")["samples"] == 100, "--service")
    check(ctx.ctl_json("show", "--pid", "4002")["samples"] == 100, "--pid")
    check(ctx.ctl_json("show", "--thread", "worker-*")["samples"] == 100, "--thread glob")
    check(ctx.ctl_json("show", "--oncpu")["samples"] == 160, "--oncpu")
    # Tree: pre-order, depth, cut-off.
    tree = ctx.ctl_json("show", "--tree")["tree"]
    check(tree[0]["function"] == "main" and tree[0]["depth"] == 0 and
          tree[0]["total"] == 200, "tree root %r" % tree[0])
    check([n["function"] for n in tree if n["depth"] == 1][:1] == ["rec"] or
          [n["function"] for n in tree if n["depth"] == 1][:1] == ["crunch"],
          "tree children %r" % tree[:4])
    shallow = ctx.ctl_json("show", "--tree", "--depth", "1")["tree"]
    check(all(n["depth"] == 0 for n in shallow), "depth cut %r" % shallow)
    # Diff: api against batch.
    d = ctx.ctl_json("show", "--diff", "--service", "api", "--base-service", "batch")
    delta = {r["function"]: r["delta_pct"] for r in d["functions"]}
    check(abs(delta["crunch"] + 100) < 0.01 and abs(delta["leaf"] - 60) < 0.01,
          "diff %r" % delta)
    # Every table view prints.
    for args in (["--by", "function"], ["--by", "line"], ["--by", "file"],
                 ["--by", "thread"], ["--by", "process"], ["--by", "service"],
                 ["--tree"], ["--diff", "--base-pid", "4002"],
                 ["--weight", "time"]):
        r = ctx.ctl("show", *args)
        check(r.stdout.strip(), "empty table for %r" % args)
    # Refusals with clear errors.
    r = ctx.ctl("show", "--tree", "--top", "3", ok=False)
    check(r.returncode == 2 and "--top" in r.stderr, "tree+top: %r" % r.stderr)
    r = ctx.ctl("show", "--pid", "999999", ok=False)
    check(r.returncode == 1 and "999999" in r.stderr, "unknown pid: %r" % r.stderr)
    r = ctx.ctl("show", "--since", "yesterday-ish", ok=False)
    check(r.returncode == 2 and "ISO" in r.stderr, "bad time: %r" % r.stderr)
    # --top applies to json too.
    check(len(ctx.ctl_json("show", "--top", "2")["functions"]) == 2, "--top json")
    a.close()
    b.close()


@once
def test_pid_reuse_is_a_new_process(ctx):
    ctx.start_daemon()
    t0 = time.time_ns() - 60 * NS
    for start, fn in ((t0, "first_life"), (t0 + 30 * NS, "second_life")):
        a = FakeAgent(ctx.rt, pid=5005, start_ns=start, service="reuse")
        th = a.thread("MainThread")
        a.samples(a.stack(["main", fn]), th, 10)
        a.close()
        # Each life is over, as profd saw it, before the next connects;
        # its samples are stored by then (one stream, read in order).
        ctx.wait_departed(5005)
    wait_stored(ctx, 20)
    ps = [p for p in ctx.ctl_json("ps")["processes"] if p["pid"] == 5005]
    check(len(ps) == 2, "a reused pid must be two processes: %r" % ps)
    check(all(not p["attached"] for p in ps), "both gone: %r" % ps)
    rows = [r for r in ctx.ctl_json("show", "--by", "process")["processes"]
            if r["pid"] == 5005]
    check(len(rows) == 2 and {r["samples"] for r in rows} == {10},
          "per instance rows %r" % rows)
    r = ctx.ctl("ps")
    check(r.stdout.count("5005") == 2, "ps table: %r" % r.stdout)


@once
def test_ps_tree_puts_workers_under_their_master(ctx):
    ctx.start_daemon()
    master = FakeAgent(ctx.rt, pid=6000, ppid=1, service="web")
    workers = [FakeAgent(ctx.rt, pid=6001 + i, ppid=6000, service="web")
               for i in range(3)]
    for w in [master] + workers:
        w.flush()
    wait_until(lambda: len(ctx.ctl_json("ps")["processes"]) == 4, 10, "4 processes")
    ps = {p["pid"]: p for p in ctx.ctl_json("ps")["processes"]}
    check(all(ps[6001 + i]["parent"] == ps[6000]["instance"] for i in range(3)),
          "parents %r" % ps)
    lines = ctx.ctl("ps").stdout.splitlines()
    check(lines[1].startswith("6000") and lines[2].startswith("  6001"),
          "tree indentation: %r" % lines)
    for w in [master] + workers:
        w.close()


@once
def test_time_window_selects_buckets(ctx):
    ctx.start_daemon("--bucket", "1s")
    a = FakeAgent(ctx.rt, pid=7007, service="clock")
    th = a.thread("MainThread")
    now = time.time_ns()
    a.samples(a.stack(["main", "old_work"]), th, 30, t_ns=now - 40 * NS)
    a.samples(a.stack(["main", "new_work"]), th, 20, t_ns=now)
    a.flush()
    wait_stored(ctx, 50)
    names = lambda d: {r["function"] for r in d["functions"]}
    recent = ctx.ctl_json("show", "--since", "10s")
    check(recent["samples"] == 20 and "old_work" not in names(recent),
          "--since 10s: %r" % recent)
    old = ctx.ctl_json("show", "--until", "20s")
    check(old["samples"] == 30 and "new_work" not in names(old), "--until: %r" % old)
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now / NS - 20))
    check(ctx.ctl_json("show", "--since", iso)["samples"] == 20, "ISO --since")
    d = ctx.ctl_json("show", "--diff", "--since", "10s", "--base-until", "20s",
                     "--base-since", "1h")
    delta = {r["function"]: r["delta_pct"] for r in d["functions"]}
    check(delta["new_work"] > 99 and delta["old_work"] < -99, "window diff %r" % delta)
    a.close()


@once
def test_retention_and_rollup(ctx):
    ctx.start_daemon("--retention", "2h")
    a = FakeAgent(ctx.rt, pid=8008, service="aged")
    th = a.thread("MainThread")
    now = time.time_ns()
    a.samples(a.stack(["main", "ancient"]), th, 7, t_ns=now - 3 * 3600 * NS)
    st = a.stack(["main", "older"])
    for k in range(12):        # 12 x 10 s buckets, 90 minutes ago
        a.samples(st, th, 5, t_ns=now - 90 * 60 * NS + k * 10 * NS)
    a.samples(a.stack(["main", "fresh"]), th, 3, t_ns=now)
    a.flush()
    wait_until(lambda: daemon_stat(ctx, "samples_received") >= 70, 10, "samples")
    wait_until(lambda: daemon_stat(ctx, "rollups") > 0, 10, "a roll-up")
    d = ctx.ctl_json("status")["daemon"]
    check(d["expired_samples"] == 7, "expired %r" % d)
    show = ctx.ctl_json("show")
    rows = {r["function"]: r["self"] for r in show["functions"]}
    check(rows.get("older") == 60 and rows.get("fresh") == 3 and
          "ancient" not in rows, "after roll-up %r" % rows)
    check(ctx.ctl_json("status")["store"]["buckets"] <= 4,
          "90-min-old 10 s buckets not rolled up: %r" % ctx.ctl_json("status")["store"])
    a.close()


@once
def test_memory_cap_drops_oldest_and_keeps_taking_new(ctx):
    ctx.start_daemon("--max-memory", "16M")
    a = FakeAgent(ctx.rt, pid=9009, service="flood")
    th = a.thread("MainThread")
    now = time.time_ns()
    # Distinct stacks over many buckets: far more than 16 MiB of counters
    # and definitions (about 60 MB uncapped).
    for k in range(200):
        for j in range(300):
            s = a.stack(["main", "f%d" % (j % 50), "g%d_%d" % (k, j)])
            a.samples(s, th, 1, t_ns=now - (3600 - k * 15) * NS)
        a.flush()
    wait_until(lambda: daemon_stat(ctx, "samples_received") >= 60000, 60,
               "the flood")
    d = ctx.ctl_json("status")["daemon"]
    check(d["evicted_samples"] > 0 or d["store_refused"] > 0,
          "nothing evicted or refused at 16M: %r" % d)
    check(d["store_bytes"] <= 16 << 20, "store over the cap: %r" % d["store_bytes"])
    if not ctx.sanitize:        # ASan's shadow and quarantine inflate RSS
        check(rss_kb(ctx.daemon.pid) < (16 + 24) * 1024,
              "RSS %d kB" % rss_kb(ctx.daemon.pid))
    a.close()
    # Not "full until restart": once reclaimed, a new process is stored.
    ctx.ctl("reset")
    b = FakeAgent(ctx.rt, pid=9010, service="after")
    b.samples(b.stack(["main", "after_the_flood"]), b.thread("MainThread"), 25)
    b.flush()
    wait_until(lambda: ctx.ctl_json("show", "--service", "after")["samples"] == 25,
               10, "the new process's samples")
    b.close()


@once
def test_thread_churn_runs_at_flat_memory(ctx):
    """A thread per request, for many rounds, under a small memory cap: the
    store stays under the cap, old threads are reclaimed, and the newest
    round is always stored whole."""
    ctx.start_daemon("--max-memory", "16M", "--sweep-interval", "1s",
                     "--bucket", "1s")
    sent = 0
    sizes = []
    for rnd in range(16):
        a = FakeAgent(ctx.rt, pid=9100 + rnd, service="churn")
        st = a.stack(["main", "handle"])
        for i in range(4000):
            a.samples(st, a.thread("request-%d-%d-%s" % (rnd, i, "x" * 60)), 1)
        a.close()
        sent += 4000
        wait_until(lambda: daemon_stat(ctx, "samples_received") >= sent, 30,
                   "round %d" % rnd)
        sizes.append(daemon_stat(ctx, "store_bytes"))
        last = ctx.ctl_json("show", "--pid", str(9100 + rnd))["samples"]
        check(last == 4000, "round %d: %d of 4000 stored" % (rnd, last))
        # The next round in another bucket: its samples are stamped with
        # the time they are made, once the clock is past this 1 s bucket.
        bucket = time.time_ns() // NS
        wait_until(lambda: time.time_ns() // NS > bucket, 5,
                   "the next 1 s bucket")
    d = ctx.ctl_json("status")["daemon"]
    check(d["reclaimed"] > 0 and d["evicted_samples"] > 0, "no reclaim: %r" % d)
    check(max(sizes) <= 16 << 20, "store over the cap: %r" % sizes)
    if not ctx.sanitize:
        check(rss_kb(ctx.daemon.pid) < (16 + 24) * 1024,
              "RSS %d kB" % rss_kb(ctx.daemon.pid))


# RESYNC is the agent's C intern tables and profd's sweep, the same for
# every interpreter (thread names per interpreter: test_hard, test_host).
@once
def test_thread_per_request_agent_is_resynced_and_reclaimed(ctx):
    """A real agent naming a thread per request: once no sample uses the
    old threads, profd asks the agent to define its ids again (RESYNC), the
    agent stays connected, and the old threads are freed."""
    ctx.start_daemon("--sweep-interval", "1s", "--resync-ids", "100")
    ctx.ctl("start", "--rate", "200")
    # Runs until told (done), at most 300 s.
    done = os.path.join(ctx.tmp, "churn.done")
    p = ctx.run_agent([os.path.join(WORKLOADS, "churn.py"), "--seconds",
                       "300", "--done", done], service="churn")
    wait_until(lambda: daemon_stat(ctx, "store_threads") > 200, 30,
               "threads to pile up")
    pid = [a["pid"] for a in ctx.ctl_json("status")["agents"] if a["connected"]][0]
    ctx.ctl("reset")            # no sample uses the old threads any more
    wait_until(lambda: daemon_stat(ctx, "resyncs") > 0, 10, "a resync")
    wait_until(lambda: daemon_stat(ctx, "reclaimed") > 200, 10, "old threads freed")
    before = daemon_stat(ctx, "samples_stored")
    wait_until(lambda: daemon_stat(ctx, "samples_stored") > before + 100, 10,
               "samples after the resync")
    st = ctx.ctl_json("status")
    agent = [a for a in st["agents"] if a["pid"] == pid][0]
    check(agent["connected"] and agent["stats"]["connects"] == 1,
          "the agent reconnected instead of resyncing: %r" % agent)
    check(agent["stats"].get("resyncs", 0) >= 1, "agent counters %r" % agent["stats"])
    check(st["daemon"]["bad_frames"] == 0, "bad frames %r" % st["daemon"])
    shown = ctx.ctl_json("show", "--since", "5s", "--by", "thread")["threads"]
    odd = [t["thread"] for t in shown if not (t["thread"].startswith("request-")
                                              or t["thread"] == "MainThread")]
    check(shown and len(odd) <= len(shown) // 10,
          "threads after resync: %r" % odd[:10])
    open(done, "w").close()
    p.wait(60)
    check(p.returncode == 0, "churn exited %r" % p.returncode)
