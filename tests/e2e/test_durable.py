"""The store on disk (-s DIR): kill -9 and restart, a corrupt or foreign
file, memory bounded whatever is on disk."""
import os
import signal
import time

from fakeagent import FakeAgent
from harness import WORKLOADS, check, once, wait_until

NS = 1000000000


def stored(ctx):
    return ctx.ctl_json("status")["daemon"]["samples_stored"]


@once
def test_kill_9_loses_at_most_the_last_interval(ctx):
    state = os.path.join(ctx.tmp, "state")
    ctx.start_daemon("-s", state, "--persist-interval", "1s")
    a = FakeAgent(ctx.rt, pid=3003, service="durable")
    th = a.thread("MainThread")
    now = time.time_ns()
    a.samples(a.stack(["main", "an_hour_ago"]), th, 40, t_ns=now - 3600 * NS)
    a.samples(a.stack(["main", "just_now"]), th, 60, t_ns=now)
    a.flush()
    wait_until(lambda: stored(ctx) == 100, 10, "100 samples stored")
    # The second write from now began after the samples were stored (a
    # loaded machine may be late for the 1 s interval).
    f0 = ctx.ctl_json("status")["daemon"]["persist_flushes"]
    wait_until(lambda: ctx.ctl_json("status")["daemon"]["persist_flushes"]
               >= f0 + 2, 30, "two writes to disk")
    before = ctx.ctl_json("show", "--top", "0")
    ps_before = ctx.ctl_json("ps")["processes"]
    ctx.daemon.send_signal(signal.SIGKILL)
    ctx.daemon.wait(10)
    a.close()
    t0 = time.monotonic()
    ctx.start_daemon("-s", state)
    wait_until(lambda: ctx.ctl_json("show")["samples"] == 100, 10,
               "the samples back after kill -9")
    elapsed = time.monotonic() - t0
    check(elapsed < 5, "serving took %.1f s" % elapsed)
    after = ctx.ctl_json("show", "--top", "0")
    key = lambda d: sorted((f["function"], f["self"], f["total"]) for f in d["functions"])
    check(key(after) == key(before), "profile changed: %r vs %r" % (key(after), key(before)))
    ps = ctx.ctl_json("ps")["processes"]
    check([p["pid"] for p in ps] == [p["pid"] for p in ps_before] and
          not ps[0]["attached"], "ps after restart: %r" % ps)
    # The old window still answers by time.
    check(ctx.ctl_json("show", "--until", "30m")["samples"] == 40, "old window")


@once
def test_real_agents_survive_a_restart(ctx):
    state = os.path.join(ctx.tmp, "state")
    ctx.start_daemon("-s", state)
    ctx.ctl("start", "--rate", "200")
    p = ctx.run_agent([os.path.join(WORKLOADS, "workload.py"), "--seconds", "2"],
                      service="restart")
    p.wait(30)
    wait_until(lambda: not any(a["connected"] for a in ctx.ctl_json("status")["agents"]),
               10, "the agent to detach")
    n = ctx.ctl_json("show")["samples"]
    check(n > 100, "samples %d" % n)
    check(ctx.stop_daemon() == 0, "SIGTERM exit")
    ctx.start_daemon("-s", state)
    check(ctx.ctl_json("show")["samples"] == n, "a clean stop keeps everything")


@once
def test_corrupt_store_is_set_aside_with_one_log_line(ctx):
    state = os.path.join(ctx.tmp, "state")
    os.makedirs(state)
    with open(os.path.join(state, "profd.db"), "wb") as f:
        f.write(b"SQLite format 3\x00" + os.urandom(8192))
    ctx.start_daemon("-s", state)
    check(ctx.ctl_json("status")["daemon"]["samples_stored"] == 0, "fresh store")
    aside = [f for f in os.listdir(state) if ".bad-" in f]
    check(aside, "corrupt file not set aside: %r" % os.listdir(state))
    with open(ctx.daemon_log, errors="replace") as f:
        lines = [l for l in f if "profd.db" in l and ("aside" in l or "bad" in l)]
    check(len(lines) == 1, "want one log line, got %r" % lines)
    # And it works: samples are kept and survive a restart.
    a = FakeAgent(ctx.rt, pid=3100, service="after")
    a.samples(a.stack(["main", "ok"]), a.thread("MainThread"), 5)
    a.close()
    wait_until(lambda: stored(ctx) == 5, 10, "5 samples")
    check(ctx.stop_daemon() == 0, "SIGTERM exit")
    ctx.start_daemon("-s", state)
    check(ctx.ctl_json("show")["samples"] == 5, "kept after restart")


@once
def test_a_big_store_on_disk_loads_within_the_memory_cap(ctx):
    state = os.path.join(ctx.tmp, "state")
    ctx.start_daemon("-s", state, "--bucket", "1s")
    a = FakeAgent(ctx.rt, pid=3200, service="big")
    th = a.thread("MainThread")
    now = time.time_ns()
    for k in range(300):
        for j in range(100):
            a.samples(a.stack(["main", "f%d" % j, "g%d_%d" % (k, j)]), th, 1,
                      t_ns=now - (600 - k * 2) * NS)
        a.flush()
    a.close()
    wait_until(lambda: stored(ctx) == 30000, 60, "30000 samples")
    check(ctx.stop_daemon() == 0, "SIGTERM exit")
    ctx.start_daemon("-s", state, "--max-memory", "16M")
    st = ctx.ctl_json("status")
    check(st["store"]["bytes"] <= st["store"]["max_bytes"], "over the cap: %r" % st["store"])
    # What memory cannot hold is read from disk.
    n = ctx.ctl_json("show")["samples"]
    check(n == 30000, "show counts %d of 30000" % n)


def folded_rows(ctx):
    """The folded profile, as {stack of function names: samples}."""
    out = ctx.ctl("show", "--format", "folded", "--top", "0").stdout
    rows = {}
    for line in out.splitlines():
        stack, n = line.rsplit(" ", 1)
        stack = ";".join(f.split(" (")[0] for f in stack.split(";"))
        rows[stack] = rows.get(stack, 0) + int(n)
    return rows


def fill_past_buckets(ctx, state, nb=300, nown=20, nshared=40, nthreads=25):
    """Starts profd on state with 1 s buckets and fills nb past buckets,
    each with nown stacks of its own (freed by a sweep if nothing kept
    them) and nshared * nthreads entries of shared stacks that make it big;
    stops profd.  The samples sent."""
    from fakeagent import SAMPLES
    ctx.start_daemon("-s", state, "--bucket", "1s")
    a = FakeAgent(ctx.rt, pid=3300, service="swept")
    threads = [a.thread("worker-%d" % i) for i in range(nthreads)]
    shared = [a.stack(["main", "shared", "s%d" % i]) for i in range(nshared)]
    now = time.time_ns()
    for k in range(nb):
        own = [a.stack(["main", "f%d" % j, "g%d_%d" % (k, j)])
               for j in range(nown)]
        flat = []
        for st in own:
            flat += [st, threads[0], 0, 10000, 1]
        for st in shared:
            for th in threads:
                flat += [st, th, 0, 10000, 1]
        a.send([SAMPLES, now - (700 - k * 2) * NS, flat])
        a.flush()
    a.close()
    total = nb * (nown + nshared * nthreads)
    wait_until(lambda: stored(ctx) == total, 60, "%d samples" % total)
    check(ctx.stop_daemon() == 0, "SIGTERM exit")
    return total


@once
def test_a_restart_with_a_bigger_cap_after_a_sweep_gives_the_right_names(ctx):
    """Buckets left on disk by a small --max-memory keep what they name:
    a sweep while they are not loaded frees none of their definitions, so
    a restart with room loads every sample, each under its own names."""
    state = os.path.join(ctx.tmp, "state")
    nb, nown, nshared, nthreads = 300, 20, 40, 25
    total = fill_past_buckets(ctx, state, nb, nown, nshared, nthreads)
    ctx.start_daemon("-s", state, "--max-memory", "16M",
                     "--persist-interval", "1s", "--sweep-interval", "1s")
    d = ctx.ctl_json("status")["daemon"]
    loaded = total - d["disk_samples"]
    check(0 < loaded < total and d["disk_buckets"] > 0,
          "want some buckets left on disk: %d of %d loaded, %d buckets on "
          "disk" % (loaded, total, d["disk_buckets"]))
    check(ctx.ctl_json("show")["samples"] == total, "show does not count "
          "what is on disk")
    sweeps = ctx.ctl_json("status")["daemon"]["sweeps"]
    wait_until(lambda: ctx.ctl_json("status")["daemon"]["sweeps"] > sweeps,
               30, "a sweep of the full store")
    time.sleep(2.5)                 # past a flush of what it freed
    check(ctx.stop_daemon() == 0, "SIGTERM exit")
    ctx.start_daemon("-s", state)
    check(not [f for f in os.listdir(state) if ".bad" in f],
          "set aside: %r; log: %s" % (os.listdir(state), ctx.log_tail()))
    rows = folded_rows(ctx)
    want = {"main;f%d;g%d_%d" % (j, k, j): 1 for k in range(nb)
            for j in range(nown)}
    want.update({"main;shared;s%d" % i: nb * nthreads
                 for i in range(nshared)})
    wrong = [(s, n, want.get(s)) for s, n in rows.items()
             if want.get(s) != n]
    check(not wrong and len(rows) == len(want),
          "%d of %d stacks as sent; wrong (stack, got, want): %r" %
          (len(rows) - len(wrong), len(want), wrong[:5]))
    print("  loaded %d of %d under the 16M cap; all with their names "
          "after a sweep and a restart with room" % (loaded, total))


@once
def test_a_restart_serves_before_it_has_read_the_disk(ctx):
    """A restart given no time to load (PROFD_PERSIST_LOAD_MS=0) serves at
    once: every bucket stays on disk, shows read them there under their
    names while profd checks them a slice at a time; once checked, they are
    pinned like any bucket on disk, so a sweep then frees none of what they
    name and a later restart that loads them all gets the same profile.
    The file counts as big (PROFD_PERSIST_SYNC_CHECK_MAX=0): it is checked
    whole on a thread, and written once that is done."""
    state = os.path.join(ctx.tmp, "state")
    nb, nown, nshared, nthreads = 300, 20, 40, 25
    total = fill_past_buckets(ctx, state, nb, nown, nshared, nthreads)
    want = {"main;f%d;g%d_%d" % (j, k, j): 1 for k in range(nb)
            for j in range(nown)}
    want.update({"main;shared;s%d" % i: nb * nthreads
                 for i in range(nshared)})
    t0 = time.monotonic()
    ctx.start_daemon("-s", state, "--sweep-interval", "1s",
                     "--persist-interval", "1s",
                     wrap=["env", "PROFD_PERSIST_LOAD_MS=0",
                           "PROFD_PERSIST_SYNC_CHECK_MAX=0"])
    rows = folded_rows(ctx)
    first = time.monotonic() - t0
    wrong = [(s, n, want.get(s)) for s, n in rows.items() if want.get(s) != n]
    check(not wrong and len(rows) == len(want),
          "first show: %d of %d stacks as sent; wrong (stack, got, want): "
          "%r" % (len(rows) - len(wrong), len(want), wrong[:5]))
    with open(ctx.daemon_log, errors="replace") as f:
        log = f.read()
    check("loaded 0 buckets (%d left on disk" % nb in log,
          "want every bucket left unread: %s" % ctx.log_tail())
    wait_until(lambda: ctx.ctl_json("status")["daemon"]["disk_unchecked"]
               == 0, 60, "the buckets on disk checked")
    d = ctx.ctl_json("status")["daemon"]
    check(d["disk_buckets"] == nb and d["disk_samples"] == total,
          "after the checks: %d buckets, %d samples on disk; want %d, %d" %
          (d["disk_buckets"], d["disk_samples"], nb, total))
    sweeps = d["sweeps"]
    wait_until(lambda: ctx.ctl_json("status")["daemon"]["sweeps"] > sweeps,
               30, "a sweep after the checks")
    check(folded_rows(ctx) == want, "the profile changed after a sweep")
    a = FakeAgent(ctx.rt, pid=3400, service="after")
    a.samples(a.stack(["main", "after"]), a.thread("MainThread"), 7)
    a.close()
    want["main;after"] = 7
    wait_until(lambda: ctx.ctl_json("status")["daemon"]["persist_flushes"]
               > 0, 30, "a write once the file is checked")
    check(ctx.stop_daemon() == 0, "SIGTERM exit")
    ctx.start_daemon("-s", state)
    check(folded_rows(ctx) == want, "a restart that loads it all differs")
    check(not [f for f in os.listdir(state) if ".bad" in f],
          "set aside: %r" % os.listdir(state))
    print("  %d samples in %d buckets, all on disk unread: first show "
          "answered %.2f s after the start" % (total, nb, first))


@once
def test_a_reset_forgets_the_buckets_left_on_disk(ctx):
    state = os.path.join(ctx.tmp, "state")
    total = fill_past_buckets(ctx, state)
    ctx.start_daemon("-s", state, "--max-memory", "16M")
    check(ctx.ctl_json("status")["daemon"]["disk_buckets"] > 0,
          "some left on disk")
    ctx.ctl("reset")
    check(ctx.ctl_json("show")["samples"] == 0, "samples after a reset")
    check(ctx.stop_daemon() == 0, "SIGTERM exit")
    ctx.start_daemon("-s", state)
    check(ctx.ctl_json("show")["samples"] == 0, "samples back after a reset")


@once
def test_a_bucket_naming_a_missing_definition_is_dropped_alone(ctx):
    """A file an older profd left with a bucket whose thread it deleted:
    that bucket alone goes, with one log line; the rest loads."""
    import sqlite3
    state = os.path.join(ctx.tmp, "state")
    ctx.start_daemon("-s", state, "--bucket", "1s")
    a = FakeAgent(ctx.rt, pid=3400, service="partial")
    kept, lonely = a.thread("kept"), a.thread("lonely")
    st = a.stack(["main", "work"])
    now = time.time_ns()
    for k in range(10):
        a.samples(st, kept, 7, t_ns=now - (100 - k * 3) * NS)
    a.samples(st, lonely, 5, t_ns=now - 50 * NS)
    a.close()
    wait_until(lambda: stored(ctx) == 75, 20, "75 samples")
    check(ctx.stop_daemon() == 0, "SIGTERM exit")
    db = sqlite3.connect(os.path.join(state, "profd.db"))
    n = db.execute("DELETE FROM threads WHERE name = (SELECT id FROM "
                   "strings WHERE text = CAST('lonely' AS BLOB))").rowcount
    db.commit()
    db.close()
    check(n == 1, "the thread row to delete: %d" % n)
    ctx.start_daemon("-s", state)
    check(not [f for f in os.listdir(state) if ".bad" in f],
          "set aside: %r" % os.listdir(state))
    got = ctx.ctl_json("show", "--by", "thread")["threads"]
    check({r["thread"]: r["self"] for r in got} == {"kept": 70},
          "threads %r" % got)
    with open(ctx.daemon_log, errors="replace") as f:
        lines = [l for l in f if "buckets dropped" in l]
    check(len(lines) == 1 and "1 buckets dropped" in lines[0],
          "log lines %r" % lines)


@once
def test_a_store_file_that_is_a_link_is_refused_and_its_target_untouched(ctx):
    """profd.db (or its -wal) a symbolic link to another application's
    SQLite file: profd refuses to start, says why, and the other file and
    its directory stay exactly as they were."""
    import hashlib
    import sqlite3
    import subprocess
    from harness import BIN

    other = os.path.join(ctx.tmp, "other")
    os.makedirs(other)
    target = os.path.join(other, "app.db")
    db = sqlite3.connect(target)
    db.execute("CREATE TABLE accounts (name TEXT, balance INTEGER)")
    db.execute("INSERT INTO accounts VALUES ('alice', 100)")
    db.commit()
    db.close()
    with open(target, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    for link in ("profd.db", "profd.db-wal"):
        state = os.path.join(ctx.tmp, "state-" + link.replace(".", "-"))
        os.makedirs(state)
        os.symlink(target, os.path.join(state, link))
        r = subprocess.run([os.path.join(BIN, "profd"), "-r",
                            os.path.join(ctx.tmp, "rt-" + link), "-s", state,
                            ], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=20,
                           universal_newlines=True, env=ctx.daemon_env())
        check(r.returncode != 0, "%s a link: profd ran (%d): %s"
              % (link, r.returncode, r.stdout[-800:]))
        check("symbolic link" in r.stdout and "profd.db" in r.stdout,
              "%s a link: no clear error: %r" % (link, r.stdout[-800:]))
        with open(target, "rb") as f:
            check(hashlib.sha256(f.read()).hexdigest() == digest,
                  "the other application's file was written")
        check(sorted(os.listdir(other)) == ["app.db"],
              "files made beside the target: %r" % os.listdir(other))
        check(sorted(os.listdir(state)) == [link],
              "files made in the state dir: %r" % os.listdir(state))


@once
def test_sync_interval_fsyncs_each_write_and_none_does_not(ctx):
    """--sync interval (the default) syncs the store at each flush before
    acknowledging; --sync none leaves it to the OS (and checkpoints).  strace counts the
    fsync and fdatasync calls profd makes while agents' samples come in."""
    import shutil
    import subprocess
    if not shutil.which("strace"):
        print("  (skipped: no strace)")
        return
    if ctx.sanitize:
        # LeakSanitizer refuses to run under ptrace: profd would exit 1.
        print("  (skipped under the sanitizers: strace and LeakSanitizer "
              "exclude each other)")
        return
    counts = {}
    for how in ("interval", "none"):
        state = os.path.join(ctx.tmp, "state-" + how)
        trace = os.path.join(ctx.tmp, "strace-" + how)
        d = ctx.start_daemon("-s", state, "--persist-interval", "1s",
                             "--sync", how)
        tracer = subprocess.Popen(["strace", "-f", "-qq", "-o", trace,
                                   "-e", "trace=fsync,fdatasync",
                                   "-p", str(d.pid)])
        ctx.procs.append(tracer)
        time.sleep(0.5)                 # attached
        a = FakeAgent(ctx.rt, pid=3500, service="sync-" + how)
        th = a.thread("MainThread")
        st = a.stack(["main", "work"])
        for _ in range(3):
            a.samples(st, th, 10)
            a.flush()
            time.sleep(1.2)
        a.close()
        check(ctx.stop_daemon() == 0, "SIGTERM exit")
        tracer.wait(10)
        with open(trace) as f:
            counts[how] = sum(1 for l in f if "sync(" in l)
    print("  fsync/fdatasync calls: %r" % counts)
    # interval: one at each of the 3+ flushes; none: only at checkpoints
    # (WAL with synchronous=NORMAL).
    check(counts["interval"] >= 3, "interval: %r" % counts)
    check(counts["none"] <= counts["interval"] - 3, "none: %r" % counts)


def store_size(state):
    return sum(os.path.getsize(os.path.join(state, f))
               for f in ("profd.db", "profd.db-wal")
               if os.path.exists(os.path.join(state, f)))


@once
def test_the_store_file_gives_space_back(ctx):
    """Deletes give their pages back to the file system: after a reset the
    file is small again.  A file an older profd made (no auto_vacuum) is
    made so at start, with one log line."""
    import sqlite3
    state = os.path.join(ctx.tmp, "state")
    fill_past_buckets(ctx, state)
    full = store_size(state)
    db = sqlite3.connect(os.path.join(state, "profd.db"))
    db.execute("PRAGMA auto_vacuum=NONE")
    db.execute("VACUUM")
    check(db.execute("PRAGMA auto_vacuum").fetchone()[0] == 0, "older file")
    db.close()
    ctx.start_daemon("-s", state, "--persist-interval", "1s")
    with open(ctx.daemon_log, errors="replace") as f:
        lines = [l for l in f if "able to give space back" in l]
    check(len(lines) == 1, "conversion log lines %r" % lines)
    ctx.ctl("reset")
    time.sleep(2.5)                 # past a flush
    check(ctx.stop_daemon() == 0, "SIGTERM exit")
    small = store_size(state)
    print("  store file %d bytes full, %d after a reset" % (full, small))
    check(small < full // 4, "%d bytes after a reset, %d full"
          % (small, full))


@once
def test_a_full_disk_at_exit_says_what_is_lost_and_what_the_agents_hold(ctx):
    """The state dir's file system fills up; profd is stopped.  Its last
    line says how many samples are not on disk: those of connected agents
    (which keep them and send them again) and those of processes that are
    gone (lost); a restart finds exactly the rest."""
    import subprocess
    disk = os.path.join(ctx.tmp, "disk")
    os.makedirs(disk)
    if os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", disk],
            stderr=subprocess.DEVNULL).returncode != 0:
        print("  (skipped: cannot mount a small tmpfs here)")
        return
    try:
        state = os.path.join(disk, "state")
        ctx.start_daemon("-s", state, "--persist-interval", "1s")
        gone = FakeAgent(ctx.rt, pid=3600, service="gone")
        stay = FakeAgent(ctx.rt, pid=3601, service="stay")
        gth, sth = gone.thread("MainThread"), stay.thread("MainThread")
        gone.samples(gone.stack(["main", "early"]), gth, 50)
        gone.flush()
        wait_until(lambda: stored(ctx) == 50, 10, "50 samples")
        time.sleep(1.5)                 # on disk
        fd = os.open(os.path.join(disk, "filler"), os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096) > 0:
                pass
        except OSError:
            pass
        os.close(fd)
        # New stacks and buckets that need room the disk does not have.
        now = time.time_ns()
        for k in range(40):
            gone.samples(gone.stack(["main", "late%d" % k]), gth, 10,
                         t_ns=now - k * NS * 11)
            stay.samples(stay.stack(["main", "held%d" % k]), sth, 5,
                         t_ns=now - k * NS * 11)
        gone.close()
        stay.flush()
        wait_until(lambda: stored(ctx) == 50 + 400 + 200, 10, "650 samples")
        time.sleep(1.5)                 # a flush that fails
        check(ctx.stop_daemon() == 0, "SIGTERM exit")
        stay.close()
        with open(ctx.daemon_log, errors="replace") as f:
            lines = [l for l in f if "cannot write at exit" in l]
        check(len(lines) == 1, "exit lines %r" % lines)
        check("600 samples are not on disk: 200 of 1 connected" in lines[0]
              and "400 of 1 processes that are gone: lost" in lines[0],
              "exit line %r" % lines[0])
        os.unlink(os.path.join(disk, "filler"))
        ctx.start_daemon("-s", state)
        check(ctx.ctl_json("show")["samples"] == 50,
              "after a restart: %d samples" % ctx.ctl_json("show")["samples"])
        print("  " + lines[0].strip())
    finally:
        ctx.stop_daemon()
        subprocess.run(["umount", "-l", disk])


@once
def test_a_bucket_bigger_than_a_row_is_written_in_slices(ctx):
    """A bucket whose entries outgrow one SQLite row (256 MiB; 4 KiB here,
    PROFD_PERSIST_MAX_ROW) is written in slices: flushes go on, the agents
    get their acks, and a restart reads every sample back."""
    state = os.path.join(ctx.tmp, "state")
    old = ctx.daemon_env
    ctx.daemon_env = lambda: dict(old(), PROFD_PERSIST_MAX_ROW="4096")
    try:
        ctx.start_daemon("-s", state, "--persist-interval", "1s")
        a = FakeAgent(ctx.rt, pid=3700, service="wide")
        threads = [a.thread("t%d" % i) for i in range(20)]
        stacks = [a.stack(["main", "f%d" % j]) for j in range(50)]
        for th in threads:
            for st in stacks:
                a.samples(st, th, 2)
        a.flush()
        wait_until(lambda: stored(ctx) == 2000, 20, "2000 samples")
        flushes = ctx.ctl_json("status")["daemon"]["persist_flushes"]
        wait_until(lambda: ctx.ctl_json("status")["daemon"][
            "persist_flushes"] > flushes + 1, 10, "two more flushes")
        d = ctx.ctl_json("status")["daemon"]
        check(d["persist_errors"] == 0, "persist errors %d" %
              d["persist_errors"])
        a.close()
        check(ctx.stop_daemon() == 0, "SIGTERM exit")
        ctx.start_daemon("-s", state)
        check(ctx.ctl_json("show")["samples"] == 2000,
              "after a restart: %d" % ctx.ctl_json("show")["samples"])
        rows = ctx.ctl_json("show", "--by", "thread")["threads"]
        check(len(rows) == 20 and all(r["self"] == 100 for r in rows),
              "threads %r" % rows[:3])
    finally:
        ctx.daemon_env = old


def folded_counts(ctx, *args):
    """show --format folded as {stack of bare names: samples}."""
    rows = {}
    for line in ctx.ctl("show", "--format", "folded", "--top", "0",
                        *args).stdout.splitlines():
        stack, n = line.rsplit(" ", 1)
        stack = ";".join(f.split(" (")[0] for f in stack.split(";"))
        rows[stack] = rows.get(stack, 0) + int(n)
    return rows


def send_rounds(ctx, a, threads, shared, rounds, per_round, first_k=0):
    """Sends rounds of per_round past 1 s buckets (each with a stack of its
    own and every shared stack on every thread), waiting after each round
    for a flush; the expected folded counts."""
    from fakeagent import SAMPLES
    now = time.time_ns()
    want = {}
    k = first_k
    for _ in range(rounds):
        flushes = ctx.ctl_json("status")["daemon"]["persist_flushes"]
        for _ in range(per_round):
            own = a.stack(["main", "own", "g%d" % k])
            flat = [own, threads[0], 0, 10000, 1]
            want["main;own;g%d" % k] = 1
            for st in shared:
                for th in threads:
                    flat += [st, th, 0, 10000, 1]
            a.send([SAMPLES, now - (900 - k * 2) * NS, flat])
            k += 1
        a.flush()
        wait_until(lambda: ctx.ctl_json("status")["daemon"]
                   ["persist_flushes"] > flushes + 1, 30, "a flush")
    for i in range(len(shared)):
        want["main;shared;s%d" % i] = (k - first_k) * len(threads)
    return want, now


@once
def test_past_the_memory_cap_old_buckets_stay_on_disk_and_shows_read_them(ctx):
    """A store bigger than --max-memory: the oldest buckets leave memory
    for disk (spilled), never lost, and every view still counts them under
    their own names, while the store's memory stays under its cap.  With
    room again after a restart, they load as they were."""
    state = os.path.join(ctx.tmp, "state")
    ctx.start_daemon("-s", state, "--bucket", "1s", "--max-memory", "16M",
                     "--persist-interval", "1s", "--sweep-interval", "1s")
    a = FakeAgent(ctx.rt, pid=3400, service="spill")
    threads = [a.thread("worker-%d" % i) for i in range(25)]
    shared = [a.stack(["main", "shared", "s%d" % i]) for i in range(40)]
    want, sent = send_rounds(ctx, a, threads, shared, 6, 50)
    total = sum(want.values())
    wait_until(lambda: stored(ctx) == total, 60, "%d samples" % total)
    st = ctx.ctl_json("status")
    d = st["daemon"]
    print("  %d samples: %d buckets spilled to disk (%d samples), %d "
          "evicted (%d samples), store %d of %d bytes"
          % (total, d["spilled_buckets"], d["spilled_samples"],
             d["evicted_buckets"], d["evicted_samples"],
             st["store"]["bytes"], st["store"]["max_bytes"]))
    check(d["spilled_buckets"] > 0 and d["disk_buckets"] > 0,
          "nothing spilled to disk: %r" % d)
    check(d["evicted_samples"] == 0, "%d samples lost past the cap"
          % d["evicted_samples"])
    check(st["store"]["bytes"] <= st["store"]["max_bytes"],
          "store over its cap: %r" % st["store"])
    got = folded_counts(ctx)
    wrong = [(s, n, want.get(s)) for s, n in got.items() if want.get(s) != n]
    check(not wrong and len(got) == len(want), "%d of %d stacks as sent; "
          "wrong (stack, got, want): %r" % (len(got) - len(wrong),
                                            len(want), wrong[:5]))
    # A window inside the spilled part reads only what it holds.
    t0 = (sent - 900 * NS) // NS
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    one = ctx.ctl_json("show", "--since", iso(t0), "--until", iso(t0 + 1))
    check(one["samples"] == 1 + 40 * 25,
          "the oldest bucket's second: %d samples" % one["samples"])
    a.close()
    check(ctx.stop_daemon() == 0, "SIGTERM exit")
    ctx.start_daemon("-s", state)
    check(ctx.ctl_json("status")["daemon"]["disk_buckets"] == 0,
          "with room, all loads")
    check(folded_counts(ctx) == want, "after a restart with room: other "
          "stacks")


@once
def test_buckets_only_on_disk_roll_up_as_they_age(ctx):
    """Buckets only on disk roll up as those in memory do: a restart with
    no time to load leaves 90 one-second buckets on disk; once they are
    older than the first tier (20 s here instead of an hour,
    PROFD_TEST_TIER_AGES), profd merges them on disk into rows a minute
    wide, and every view counts the same samples under the same names,
    then and after another restart."""
    state = os.path.join(ctx.tmp, "state")
    ctx.start_daemon("-s", state, "--bucket", "1s", "--persist-interval",
                     "1s")
    a = FakeAgent(ctx.rt, pid=3900, service="aging")
    threads = [a.thread("w%d" % i) for i in range(4)]
    stacks = [a.stack(["main", "f%d" % j]) for j in range(30)]
    now = time.time_ns()
    want = {}
    for k in range(90):
        for j in range(k % 7, 30, 7):
            a.samples(stacks[j], threads[k % 4], 1 + j % 3,
                      t_ns=now - (100 - k) * NS)
            key = "main;f%d" % j
            want[key] = want.get(key, 0) + 1 + j % 3
    a.flush()
    total = sum(want.values())
    wait_until(lambda: stored(ctx) == total, 20, "%d samples" % total)
    flushes = ctx.ctl_json("status")["daemon"]["persist_flushes"]
    wait_until(lambda: ctx.ctl_json("status")["daemon"]["persist_flushes"]
               > flushes + 1, 10, "two more flushes")
    a.close()
    check(ctx.stop_daemon() == 0, "SIGTERM exit")
    old = ctx.daemon_env
    ctx.daemon_env = lambda: dict(old(), PROFD_PERSIST_LOAD_MS="0",
                                  PROFD_TEST_TIER_AGES="20:3600")
    try:
        ctx.start_daemon("-s", state, "--bucket", "1s")
        d = ctx.ctl_json("status")["daemon"]
        check(d["disk_buckets"] >= 90, "left on disk: %d buckets"
              % d["disk_buckets"])
        # 90 s of buckets lie in 2 or 3 minutes.
        wait_until(lambda: ctx.ctl_json("status")["daemon"]["disk_buckets"]
                   <= 3, 60, "buckets on disk rolled up into minutes")
        d = ctx.ctl_json("status")["daemon"]
        print("  %d rolled up on disk into %d buckets of %d samples, "
              "%d failures" % (d["disk_rollups"], d["disk_buckets"],
                               d["disk_samples"], d["disk_rollup_failures"]))
        check(d["disk_rollups"] > 0 and d["disk_rollup_failures"] == 0 and
              d["disk_samples"] == total and d["disk_unreadable"] == 0,
              "status after the roll-ups: %r" % d)
        got = folded_counts(ctx)
        check(got == want, "after the roll-ups: %d stacks, wrong: %r" %
              (len(got), [(k, got.get(k), n) for k, n in want.items()
                          if got.get(k) != n][:5]))
        check(ctx.stop_daemon() == 0, "SIGTERM exit")
    finally:
        ctx.daemon_env = old
    ctx.start_daemon("-s", state, "--bucket", "1s")
    st = ctx.ctl_json("status")
    check(st["store"]["buckets"] <= 3 and st["daemon"]["disk_buckets"] == 0,
          "after a restart with room: %r" % st["store"])
    check(folded_counts(ctx) == want, "after a restart: other stacks")


@once
def test_max_disk_drops_the_oldest_buckets_on_disk_first(ctx):
    state = os.path.join(ctx.tmp, "state")
    ctx.start_daemon("-s", state, "--bucket", "1s", "--max-memory", "16M",
                     "--max-disk", "2M", "--persist-interval", "1s",
                     "--sweep-interval", "1s")
    a = FakeAgent(ctx.rt, pid=3500, service="disk")
    threads = [a.thread("worker-%d" % i) for i in range(25)]
    shared = [a.stack(["main", "shared", "s%d" % i]) for i in range(40)]
    want, _ = send_rounds(ctx, a, threads, shared, 8, 50)
    total = sum(want.values())
    wait_until(lambda: ctx.ctl_json("status")["daemon"]
               ["disk_dropped_buckets"] > 0, 30, "buckets dropped for "
               "--max-disk")
    d = ctx.ctl_json("status")["daemon"]
    shown = ctx.ctl_json("show")["samples"]
    print("  %d sent; %d dropped for --max-disk (%d buckets), %d shown; "
          "file %d bytes" % (total, d["disk_dropped_samples"],
                             d["disk_dropped_buckets"], shown,
                             d["disk_bytes"]))
    check(shown == total - d["disk_dropped_samples"] - d["evicted_samples"],
          "shown %d, sent %d, dropped %d + %d" % (
              shown, total, d["disk_dropped_samples"], d["evicted_samples"]))
    # The oldest go first: the first bucket's own stack is gone, the
    # newest's is there.
    got = folded_counts(ctx)
    check("main;own;g0" not in got and "main;own;g399" in got,
          "not the oldest first: g0 %r, g399 %r" % (got.get("main;own;g0"),
                                                    got.get("main;own;g399")))
    # What only the dropped buckets named is freed by the sweeps once the
    # agent is gone: their own stacks (one each), not the shared ones.
    a.close()
    left = 40 + 400 - d["disk_dropped_buckets"]
    wait_until(lambda: ctx.ctl_json("status")["daemon"]["store_stacks"]
               <= left + 5, 30, "the dropped buckets' stacks freed (want "
               "at most %d)" % (left + 5))
    check(len(folded_counts(ctx)) == len(got), "a sweep changed the "
          "stacks shown")


@once
def test_max_disk_refuses_what_is_not_a_size(ctx):
    """Exit 2 with a line that says what --max-disk wants; --help shows
    the 30-day retention and the disk bound."""
    import subprocess
    from harness import BIN
    profd = os.path.join(BIN, "profd")
    for bad in ("5", "lots", "-1G"):
        r = subprocess.run([profd, "-r", ctx.rt, "--max-disk", bad],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=10)
        check(r.returncode == 2 and "--max-disk wants 0 (no bound) or a "
              "size" in r.stderr, "--max-disk %s: exit %d, %r"
              % (bad, r.returncode, r.stderr))
    r = subprocess.run([profd, "--help"], stdout=subprocess.PIPE,
                       universal_newlines=True, timeout=10)
    check("--max-disk SIZE" in r.stdout and "(default 30d)" in r.stdout,
          "profd --help: %r" % r.stdout)
