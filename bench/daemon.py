"""daemon.py -- profd's own benchmark: the daemon against its targets.

Each scenario starts a private profd (bin/profd -r DIR) and drives it with
build/bench/loadgen, fake agents speaking the real protocol:
  a ingest   N connections blast full batches of depth-20 stacks (1,000
             distinct, 8 threads): samples per second of profd CPU time
             (/proc/PID/stat utime+stime, daemon.samples_received)
  b fleet    500 connections, 100 samples/s each in 100 ms batches: profd
             CPU as % of one core, and whether every connection is attached
  c query    10M samples over 100k stacks spread over the last hour, then
             `profctl show --top 20` and `show --since 5m`, median of 5
  d latency  on that store, `show` in a loop while one agent sends a new
             stack every 20 ms: agent-to-store latency (see loadgen.c);
             then the same while 10 clients loop stack formats (5 svg,
             5 pprof, each written to /dev/null)
  e memory   profd RSS before/after 100k new depth-20 stacks: bytes/stack
  f week     7 days x 50 processes at 10 s buckets, 5,000 stacks (compressed,
             see loadgen.c), state dir -s DIR: RSS, disk, restart time
Prints a table and the exact commands; n/m where this profd lacks the
feature (say -s or --since).  Never fails on timing: exit 1 only when the
benchmark itself broke.

  daemon.py [--quick] [--only a,b,c,d,e,f] [--seconds S] [--profd PATH]
            [--json FILE] ...   (--help for the scale-down flags)
"""
import argparse
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PROFD = os.path.join(ROOT, "bin", "profd")
PROFCTL = os.path.join(ROOT, "bin", "profctl")
LOADGEN = os.path.join(ROOT, "build", "bench", "loadgen")
TICK = os.sysconf("SC_CLK_TCK")
RESTART_WAIT = 20   # s: give up on a restarted profd showing the data

# The week's counters of samples the store let go (status "daemon").
WEEK_LOSSES = ("evicted_samples", "samples_dropped", "ids_unmapped",
               "expired_samples", "disk_expired_samples",
               "disk_dropped_samples")

# Tried in order for the week: the new store's flags, then bare -s.
WEEK_FLAGS = [
    ["--bucket", "10s", "--retention", "7d"],
    ["--bucket", "10", "--retention", "604800"],
    [],
]


class Broke(Exception):
    """The benchmark itself failed (not a slow daemon)."""


def rel(path):
    path = str(path)
    return os.path.relpath(path, ROOT) if path.startswith(ROOT) else path


def cmdline(argv):
    return " ".join(shlex.quote(rel(a)) for a in argv)


class Profd:
    """One private profd in its own runtime dir."""

    def __init__(self, tmp, name, extra=()):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.extra = list(extra)
        self.log = os.path.join(self.dir, "profd.log")
        self.proc = None

    def argv(self):
        return [PROFD, "-r", self.dir] + [str(x) for x in self.extra]

    def start(self, wait=True):
        """Starts profd; False if it exited (say on an unknown flag)."""
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=log)
        if not wait:
            return True
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self.ctl("status", check=False).returncode == 0:
                self.ctl("start", check=False)
                return True
            time.sleep(0.02)
        raise Broke("profd did not answer within 10 s: %s" % self.tail())

    def tail(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def ctl(self, *args, check=True):
        r = subprocess.run([PROFCTL, "-r", self.dir] + [str(a) for a in args],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True)
        if check and r.returncode != 0:
            raise Broke("profctl %s: %s" % (" ".join(map(str, args)),
                                             r.stderr.strip()))
        return r

    def status(self):
        return json.loads(self.ctl("status", "--format", "json").stdout)

    def received(self):
        return self.status()["daemon"]["samples_received"]

    def wait_received(self, target, stall=10.0):
        """Waits until samples_received reaches target or stops moving."""
        last, since = -1, time.monotonic()
        while True:
            n = self.received()
            if n >= target:
                return n
            if n != last:
                last, since = n, time.monotonic()
            elif time.monotonic() - since > stall:
                return n
            time.sleep(0.05)

    def cpu(self):
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def rss(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise Broke("no VmRSS")

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Loadgen:
    """A running loadgen; lines "ready/done/end k=v ..." come back."""

    def __init__(self, profd, args):
        self.argv = [LOADGEN, "-r", profd.dir] + [str(a) for a in args]
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     universal_newlines=True)
        self.seen = {}

    def until(self, word):
        """Reads lines up to the one starting with word; its k=v map."""
        while word not in self.seen:
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait()
                raise Broke("loadgen %s ended (rc %s) before '%s'" % (
                    cmdline(self.argv[3:]), self.proc.returncode, word))
            parts = line.split()
            kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
            self.seen[parts[0]] = kv
        return self.seen[word]

    def finish(self):
        self.proc.stdin.close()     # ends a --hold-stdin
        end = self.until("end") if "end" not in self.seen else self.seen["end"]
        if self.proc.wait() != 0:
            raise Broke("loadgen %s failed" % cmdline(self.argv[3:]))
        return end


def attached(status):
    """Connected agents in a status reply, or None if it has no list."""
    for key in ("agents", "processes", "instances"):
        lst = status.get(key)
        if isinstance(lst, list):
            return sum(1 for a in lst if a.get("connected", True))
    return None


def has_data(text):
    try:
        obj = json.loads(text)
    except ValueError:
        return False
    return isinstance(obj, dict) and any(
        isinstance(v, list) and v for v in obj.values())


def timed_show(p, args, n):
    """Wall seconds of n runs of profctl show ARGS; None if it fails."""
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        r = p.ctl("show", *args, check=False)
        dt = time.monotonic() - t0
        if r.returncode != 0:
            return None, r.stderr.strip().splitlines()[:1] or [""]
        times.append(dt)
    return times, None


def ms(s):
    return "%.1f ms" % (s * 1000)


class Bench:
    def __init__(self, a):
        self.a = a
        self.tmp = tempfile.mkdtemp(prefix="pb.", dir="/tmp")
        self.rows = []      # figure, target, measured, met
        self.cmds = []      # (scenario, command)
        self.raw = {}
        self.broke = False

    def row(self, figure, target, measured, met):
        self.rows.append([figure, target, measured, met])

    def cmd(self, tag, argv, note=""):
        self.cmds.append("%s. %s%s" % (tag, cmdline(argv), note))

    def fresh(self, name, extra=()):
        p = Profd(self.tmp, name, extra)
        if not p.start():
            raise Broke("profd exited at start-up: %s" % p.tail())
        self.cmd(name[0], p.argv())
        return p

    # a ------------------------------------------------------------------
    def ingest(self):
        a = self.a
        p = self.fresh("a-ingest")
        try:
            args = ["ingest", "-c", a.ingest_conns, "-t", a.seconds]
            r0, c0 = p.received(), p.cpu()
            lg = Loadgen(p, args)
            self.cmd("a", lg.argv)
            done = lg.until("done")
            sent = int(lg.finish()["sent"])
            r1 = p.wait_received(r0 + sent)
            c1 = p.cpu()
        finally:
            p.stop()
        rate = (r1 - r0) / max(c1 - c0, 1.0 / TICK)
        wall = sent / max(float(done["seconds"]), 1e-3)
        self.raw["ingest"] = dict(received=r1 - r0, sent=sent, cpu_s=c1 - c0,
                                  per_cpu_s=rate, wall_rate=wall)
        self.row("ingest: samples per second of profd CPU (%s conns, "
                 "depth 20, 1k stacks)" % a.ingest_conns, ">= 5,000,000",
                 "%.2f M/s (%.2f M in %.2f s CPU; %.2f M/s wall)" % (
                     rate / 1e6, (r1 - r0) / 1e6, c1 - c0, wall / 1e6),
                 "yes" if rate >= 5e6 and r1 - r0 >= sent else "no")

    # b ------------------------------------------------------------------
    def fleet(self):
        a = self.a
        # profd's default --max-agents is 1024.
        p = self.fresh("b-fleet", ["--max-agents", a.fleet_conns + 16]
                       if a.fleet_conns > 1000 else [])
        warm = min(0.5, a.seconds / 5)
        try:
            args = ["fleet", "-c", a.fleet_conns, "-t", a.seconds,
                    "--rate", 100, "--period-ms", 100, "--hold-stdin"]
            lg = Loadgen(p, args)
            self.cmd("b", lg.argv)
            # "ready": profd has handled every connection's definitions.
            lg.until("ready")
            time.sleep(warm)
            c0, t0, r0 = p.cpu(), time.monotonic(), p.received()
            lg.until("done")
            c1, t1, r1 = p.cpu(), time.monotonic(), p.received()
            att = attached(p.status())
            lg.finish()
            lost = int(lg.seen["end"]["lost"])
        finally:
            p.stop()
        pct = 100.0 * (c1 - c0) / (t1 - t0)
        self.raw["fleet"] = dict(cpu_pct=pct, attached=att, lost=lost,
                                 samples_per_s=(r1 - r0) / (t1 - t0))
        self.row("fleet: profd CPU, %s conns x 100 samples/s "
                 "(100 ms batches)" % a.fleet_conns, "< 10% of a core",
                 "%.1f%% (%.0f samples/s over %.1f s)" % (
                     pct, (r1 - r0) / (t1 - t0), t1 - t0),
                 "yes" if pct < 10 else "no")
        self.row("fleet: connections held", "all %s attached" % a.fleet_conns,
                 "n/m" if att is None else "%d attached, %d lost" % (att, lost),
                 "n/m" if att is None else
                 ("yes" if att >= a.fleet_conns and lost == 0 else "no"))

    # c, d ---------------------------------------------------------------
    def query(self):
        a = self.a
        p = self.fresh("c-query")
        try:
            args = ["fill", "-N", a.fill_samples, "-n", a.fill_stacks]
            r0 = p.received()
            lg = Loadgen(p, args)
            self.cmd("c", lg.argv)
            sent = int(lg.finish()["sent"])
            got = p.wait_received(r0 + sent) - r0
            note = "" if got >= sent else " (%d of %d received)" % (got, sent)
            for tag, q in (("top", ["--top", 20, "--format", "json"]),
                           ("since", ["--since", "5m", "--top", 20,
                                      "--format", "json"])):
                self.cmd("c", [PROFCTL, "-r", p.dir, "show"] + q)
                times, err = timed_show(p, q, a.queries)
                self.raw["query_" + tag] = times
                what = ("show --top 20 (whole store, %.0fM samples, %dk "
                        "stacks)" % (a.fill_samples / 1e6, a.fill_stacks / 1000)
                        if tag == "top" else "show --since 5m")
                if times is None:
                    self.row("query: " + what, "report", "n/m (%s)" % err[0],
                             "n/m")
                else:
                    self.row("query: " + what, "report",
                             "median %s [min %s, max %s] of %d%s" % (
                                 ms(statistics.median(times)), ms(min(times)),
                                 ms(max(times)), len(times), note), "-")
            if "d" in a.only:
                self.latency(p)
        finally:
            p.stop()

    def latency(self, p):
        self.latency_with(p, "show loops", [["--top", 20, "--format",
                                              "json"]], "latency")
        self.latency_with(p, "10 clients loop svg and pprof shows",
                          [["--format", "svg", "-o", "/dev/null"],
                           ["--format", "pprof", "-o", "/dev/null"]] * 5,
                          "latency_formats")

    def latency_with(self, p, what, queries, key):
        """Agent-to-store latency while each of queries loops in a client
        of its own."""
        a = self.a
        stop = threading.Event()
        shows = []

        def loop(q):
            while not stop.is_set():
                t0 = time.monotonic()
                p.ctl("show", *q, check=False)
                shows.append(time.monotonic() - t0)

        ths = [threading.Thread(target=loop, args=(q,)) for q in queries]
        for q in sorted(set(tuple(q) for q in queries)):
            self.cmd("d", [PROFCTL, "-r", p.dir, "show"] + list(q),
                     "   # %d clients in a loop, meanwhile:"
                     % sum(1 for x in queries if tuple(x) == q))
        for th in ths:
            th.start()
        try:
            lg = Loadgen(p, ["latency", "-t", a.seconds, "--period-ms", 20,
                             "--first", 50000000])
            self.cmd("d", lg.argv)
            done = lg.until("done")
            lg.finish()
        finally:
            stop.set()
            for th in ths:
                th.join()
        p99 = float(done["p99_ms"])
        d = p.status()["daemon"]
        self.raw[key] = dict(done, shows=len(shows))
        self.row("latency: agent batch -> in store, p50/p99/max, while "
                 + what, "p99 < 50 ms",
                 "%s / %s / %s ms (%s probes; %d shows, median %s; "
                 "%d encoded aside, %d refused)" % (
                     done["p50_ms"], done["p99_ms"], done["max_ms"],
                     done["probes"], len(shows),
                     ms(statistics.median(shows)) if shows else "-",
                     d.get("shows_encoded_aside", 0),
                     d.get("replies_refused", 0)),
                 "yes" if p99 < 50 else "no")

    # e ------------------------------------------------------------------
    def memory(self):
        a = self.a
        p = self.fresh("e-memory")
        try:
            warm = ["stacks", "-n", 1000, "--first", 1]
            lg = Loadgen(p, warm)
            self.cmd("e", lg.argv)
            sent0 = int(lg.finish()["sent"])
            p.wait_received(sent0)
            rss0 = p.rss()
            args = ["stacks", "-n", a.mem_stacks, "--first", 10000001]
            lg = Loadgen(p, args)
            self.cmd("e", lg.argv)
            sent1 = int(lg.finish()["sent"])
            got = p.wait_received(sent0 + sent1)
            rss1 = p.rss()
        finally:
            p.stop()
        per = (rss1 - rss0) / a.mem_stacks
        self.raw["memory"] = dict(rss0=rss0, rss1=rss1, per_stack=per,
                                  received=got)
        self.row("memory: profd RSS per new depth-20 stack (%dk stacks, 1 "
                 "sample each)" % (a.mem_stacks // 1000), "< 200 B",
                 "%.0f B (RSS %.1f -> %.1f MiB)" % (
                     per, rss0 / 2**20, rss1 / 2**20),
                 "yes" if per < 200 else "no")

    # f ------------------------------------------------------------------
    def week(self):
        a = self.a
        state = os.path.join(self.tmp, "f-state")
        p = None
        for flags in ([shlex.split(a.week_flags)] if a.week_flags is not None
                      else WEEK_FLAGS):
            shutil.rmtree(state, ignore_errors=True)
            cand = Profd(self.tmp, "f-week", ["-s", state] + flags)
            if cand.start():
                p = cand
                break
        label = ("week: %g days x %d procs, 10 s buckets, 5k stacks, "
                 "%d samples a bucket and process (compressed)" %
                 (a.week_days, a.week_procs, a.week_per_bucket))
        if p is None:
            why = [l for l in cand.tail().splitlines() if "option" in l]
            self.cmds.append("f. n/m: profd does not take -s DIR (%s)" %
                             (why[-1] if why else "exited at start-up"))
            for fig, tgt in (("RSS", "< 256 MiB"), ("state on disk", "report"),
                             ("restart until show answers", "< 1 s")):
                self.row("%s: %s" % (label, fig), tgt, "n/m", "n/m")
            return
        self.cmd("f", p.argv())
        try:
            args = ["week", "-c", a.week_procs, "--days", a.week_days,
                    "--bucket", 10, "-n", 5000, "--per-bucket",
                    a.week_per_bucket]
            lg = Loadgen(p, args)
            self.cmd("f", lg.argv)
            sent = int(lg.finish()["sent"])
            got = p.wait_received(sent)
            rss = p.rss()
            st = p.status().get("daemon", {})
        finally:
            p.stop()
        disk = sum(os.path.getsize(os.path.join(d, f))
                   for d, _, fs in os.walk(state) for f in fs)
        # Restart on the same state: until status answers, then a show
        # over the whole retention returns data.
        t0 = time.monotonic()
        p.start(wait=False)
        t_status = t_show = None
        try:
            while time.monotonic() - t0 < RESTART_WAIT and p.proc.poll() is None:
                if t_status is None:
                    if p.ctl("status", check=False).returncode == 0:
                        t_status = time.monotonic() - t0
                    else:
                        time.sleep(0.005)
                        continue
                r = p.ctl("show", "--top", 20, "--format", "json",
                          check=False)
                if r.returncode == 0 and has_data(r.stdout):
                    t_show = time.monotonic() - t0
                    break
                time.sleep(0.005)
        finally:
            p.stop()
        self.cmd("f", p.argv(), "   # restarted; then profctl status, "
                 "show --top 20 --format json until it has data")
        # What the store let go: a figure that holds only because data
        # was thrown away is not met.
        lost = {k: int(st.get(k, 0) or 0) for k in WEEK_LOSSES}
        spilled = int(st.get("spilled_samples", 0) or 0)
        self.raw["week"] = dict(sent=sent, received=got, rss=rss, disk=disk,
                                store_bytes=st.get("store_bytes"),
                                spilled_samples=spilled, lost=lost,
                                restart_status=t_status, restart_show=t_show)
        note = "" if got >= sent else "; %d of %d received" % (got, sent)
        losses = ", ".join("%s %d" % (k, v) for k, v in lost.items())
        kept = got >= sent and not any(lost.values())
        self.row("%s: RSS" % label, "< 256 MiB",
                 "%.1f MiB (%.1fM samples%s; lost: %s; kept on disk only: "
                 "%d)" % (rss / 2**20, sent / 1e6, note, losses, spilled),
                 "yes" if rss < 256 * 2**20 and kept else "no")
        self.row("%s: state on disk" % label, "report",
                 "%.1f MiB" % (disk / 2**20), "-")
        self.row("%s: restart until show answers" % label, "< 1 s",
                 "status %s, show %s" % (
                     "-" if t_status is None else "%.2f s" % t_status,
                     "no data" if t_show is None else "%.2f s" % t_show),
                 "yes" if t_show is not None and t_show < 1 else "no")

    def run(self):
        steps = [("a", self.ingest), ("b", self.fleet), ("c", self.query),
                 ("e", self.memory), ("f", self.week)]
        if "d" in self.a.only and "c" not in self.a.only:
            self.a.only += ",c"
        for tag, fn in steps:
            if tag not in self.a.only:
                continue
            t0 = time.monotonic()
            try:
                fn()
            except Exception as e:  # reported in the table, exit 1
                print("bench-daemon: %s: %s" % (fn.__name__, e),
                      file=sys.stderr)
                self.row("%s: %s" % (fn.__name__, "error"), "-", str(e)[:80],
                         "error")
                self.broke = True
            print("bench-daemon: %s done in %.1f s" % (
                fn.__name__, time.monotonic() - t0), file=sys.stderr,
                flush=True)

    def print(self):
        head = ["figure", "target", "measured", "met?"]
        w = [max(len(str(r[i])) for r in self.rows + [head])
             for i in range(4)]
        line = lambda r: "| " + " | ".join(
            str(c).ljust(x) for c, x in zip(r, w)) + " |"
        print(line(head))
        print("|" + "|".join("-" * (x + 2) for x in w) + "|")
        for r in self.rows:
            print(line(r))
        print("\ncommands (DIR = %s):" % self.tmp)
        for c in self.cmds:
            print("  " + c.replace(self.tmp, "DIR"))


def main():
    global PROFD, PROFCTL
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="a,b,c,d,e,f",
                    help="scenarios to run, e.g. a,e")
    ap.add_argument("--quick", action="store_true",
                    help="everything scaled down, for a smoke test")
    ap.add_argument("--seconds", type=float, default=None,
                    help="length of ingest, fleet, latency (10)")
    ap.add_argument("--ingest-conns", type=int, default=2)
    ap.add_argument("--fleet-conns", type=int, default=500)
    ap.add_argument("--fill-samples", type=int, default=None)
    ap.add_argument("--fill-stacks", type=int, default=None)
    ap.add_argument("--queries", type=int, default=5)
    ap.add_argument("--mem-stacks", type=int, default=None)
    ap.add_argument("--week-days", type=float, default=None)
    ap.add_argument("--week-procs", type=int, default=50)
    ap.add_argument("--week-per-bucket", type=int, default=20,
                    help="samples per 10 s bucket and process (100 Hz "
                    "would be 1000; weights are scaled to match)")
    ap.add_argument("--week-flags", default=None,
                    help="profd flags besides -s DIR for the week (default: "
                    "try '--bucket 10s --retention 7d', then seconds, then "
                    "none)")
    ap.add_argument("--profd", default=PROFD,
                    help="profd binary to measure (default bin/profd)")
    ap.add_argument("--profctl", default=PROFCTL,
                    help="profctl binary (default bin/profctl)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temp dir (profd logs)")
    ap.add_argument("--json", help="also write the raw figures here")
    a = ap.parse_args()
    q = a.quick
    a.seconds = a.seconds or (3.0 if q else 10.0)
    a.fill_samples = a.fill_samples or (1000000 if q else 10000000)
    a.fill_stacks = a.fill_stacks or (10000 if q else 100000)
    a.mem_stacks = a.mem_stacks or (20000 if q else 100000)
    a.week_days = a.week_days or (0.5 if q else 7.0)
    PROFD, PROFCTL = os.path.abspath(a.profd), os.path.abspath(a.profctl)
    for path in (PROFD, PROFCTL, LOADGEN):
        if not os.access(path, os.X_OK):
            sys.exit("bench-daemon: %s is missing; run make daemon ctl %s" %
                     (rel(path), rel(LOADGEN)))
    b = Bench(a)
    try:
        b.run()
        print("\nprofd benchmark (%s; %d CPUs):\n" % (
            time.strftime("%Y-%m-%d"), os.cpu_count()))
        b.print()
        if a.json:
            with open(a.json, "w") as f:
                json.dump(b.raw, f, indent=1)
    finally:
        if a.keep:
            print("kept %s" % b.tmp, file=sys.stderr)
        else:
            shutil.rmtree(b.tmp, ignore_errors=True)
    sys.exit(1 if b.broke else 0)


if __name__ == "__main__":
    main()
