#!/usr/bin/env python3
"""week.py -- the fleet week at full density (`make bench-week`).

build/bench/week writes a week of 5 services x 10 workers, 4 threads
each, at 100 Hz in wall mode into a store directory through the real
store and persist code (past timestamps, every bucket full; see
bench/week.c), with the store's share of `--max-memory 256M`.  Then a
real profd is started on it, the page cache dropped first where the
machine lets us, and timed: until `profctl status` answers, `show --top
20` of one service over the whole week, one day and 5 minutes (profctl
included, 5 runs each: median [min, max]), profd's resident memory after
them, and a restart after `kill -9` to the first answer.  Every figure the
store let go (evicted, dropped, expired, dropped for the disk bound) is
printed beside the table.  Never fails on timing.

usage: python3 bench/week.py [--days N] [--keep]
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEEK = os.path.join(ROOT, "build", "bench", "week")
PROFD = os.path.join(ROOT, "bin", "profd")
PROFCTL = os.path.join(ROOT, "bin", "profctl")
STORE_MIB = 184     # the store's share of --max-memory 256M
LOSSES = ("evicted_samples", "samples_dropped", "expired_samples",
          "disk_expired_samples", "disk_dropped_samples")


def drop_caches():
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return "cold"
    except OSError:
        return "warm (no right to drop the page cache)"


def rss_kib(pid):
    got = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                got[line.split(":")[0]] = int(line.split()[1])
    return got


class Profd:
    def __init__(self, rt, state):
        self.rt, self.state, self.proc = rt, state, None

    def start(self):
        self.log = open(os.path.join(self.rt, "profd.log"), "ab")
        self.proc = subprocess.Popen(
            [PROFD, "-r", self.rt, "-s", self.state, "--max-memory", "256M"],
            stdout=self.log, stderr=self.log)
        return time.monotonic()

    def ctl(self, *args):
        return subprocess.run([PROFCTL, "-r", self.rt] + [str(a) for a in args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True)

    def first_answers(self, t0):
        """Seconds from t0 until status answers, then until a show of the
        whole store has data."""
        t_status = t_show = None
        while time.monotonic() - t0 < 60 and self.proc.poll() is None:
            if t_status is None:
                if self.ctl("status").returncode == 0:
                    t_status = time.monotonic() - t0
                continue
            if self.ctl("show", "--top", 1).returncode == 0:
                t_show = time.monotonic() - t0
                break
        return t_status, t_show

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


def timed(p, args, n=5):
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        r = p.ctl("show", *args)
        times.append(time.monotonic() - t0)
        if r.returncode != 0:
            return None, (r.stderr.strip().splitlines() or [""])[0]
    return times, None


def fmt(times):
    return "median %.0f ms [%.0f, %.0f]" % (
        statistics.median(times) * 1e3, min(times) * 1e3, max(times) * 1e3)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=float, default=7)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="pw.", dir="/tmp")
    state, rt = os.path.join(tmp, "state"), os.path.join(tmp, "rt")
    os.makedirs(state)
    os.makedirs(rt, mode=0o700)
    now = time.time_ns()
    cmd = [WEEK, "-d", a.days, "-m", STORE_MIB, "-t", now, state]
    print("$ " + " ".join(str(c) for c in cmd))
    out = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    print(out, end="")
    fig = dict(l.split(" ", 1) for l in out.splitlines())
    disk = sum(os.path.getsize(os.path.join(state, f))
               for f in os.listdir(state))
    rows = []
    n = int(fig["samples"])
    cpu = float(fig["cpu_seconds"])
    lost = ", ".join("%s %s" % (k, fig.get(k, "?")) for k in LOSSES)
    rows.append(("the builder's store ingest, persistence on, one core "
                 "(samples a second of its CPU, added as a count per stack, "
                 "thread and bucket; flushes and roll-ups included; not "
                 "the wire path)",
                 ">= 5 M/s", "%.1f M/s (%d samples in %.1f s of CPU)" %
                 (n / cpu / 1e6, n, cpu)))
    rows.append(("disk for %g days, default tiers" % a.days, "< 2 GiB",
                 "%.0f MiB (%s B an entry coded; %s)" % (
                     disk / 2**20, "%.1f" % (int(fig["disk_entry_bytes"]) /
                                           max(1, int(fig["disk_entries"]))),
                     lost)))
    rows.append(("builder's resident memory, store share %d MiB" %
                 STORE_MIB, "< 256 MiB", "%.0f MiB" %
                 (int(fig["max_rss_kib"]) / 1024)))
    p = Profd(rt, state)
    cache = drop_caches()
    t0 = p.start()
    try:
        t_status, t_show = p.first_answers(t0)
        rows.append(("profd -s on that store (%s page cache): to the "
                     "first status / first show" % cache, "< 1 s",
                     "%s / %s" % tuple("%.2f s" % t if t is not None else
                                       "none" for t in (t_status, t_show))))
        # The windows end where the week does (the build took a while).
        end = int(fig["now_ns"]) // 10**9
        iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
        for label, args, target in (
                ("whole week", (), "< 1 s"),
                ("its last day", ("--since", iso(end - 86400), "--until",
                                  iso(end)), "< 200 ms"),
                ("its last 5 minutes", ("--since", iso(end - 300),
                                        "--until", iso(end)), "< 10 ms")):
            times, err = timed(p, ("--top", 20, "--service", "svc0") + args)
            rows.append(("show --top 20 --service svc0, %s (profctl "
                         "included)" % label, target,
                         fmt(times) if times else "failed: " + err))
        mem = rss_kib(p.proc.pid)
        rows.append(("profd's resident memory after those shows "
                     "(--max-memory 256M)", "< 256 MiB",
                     "%.0f MiB (peak %.0f MiB)" % (mem["VmRSS"] / 1024,
                                                  mem["VmHWM"] / 1024)))
        p.kill9()
        cache = drop_caches()
        t0 = p.start()
        t_status, t_show = p.first_answers(t0)
        rows.append(("restart after kill -9 (%s page cache): to the first "
                     "status / first show" % cache, "< 1 s",
                     "%s / %s" % tuple("%.2f s" % t if t is not None else
                                       "none" for t in (t_status, t_show))))
    finally:
        p.stop()
    print()
    print("| figure | target | measured |")
    print("|---|---|---|")
    for r in rows:
        print("| %s | %s | %s |" % r)
    if a.keep:
        print("kept %s" % tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
