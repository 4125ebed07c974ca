"""capture.py -- the sampler's capture cost, a baseline build against this tree.

For each interpreter (default python3.11) and each reader (direct, gil), with
a real profd and the real agent, on tests/workloads/capture.py (one
CPU-bound host thread spinning 20 Python frames deep; or 32 threads, all
spinning 20 frames deep), in wall mode:

  syscalls/tick   strace -c attached to the sampler thread alone (the thread
                  named "profagent") for --strace-seconds at 1 kHz, divided
                  by the agent's `ticks` done in that window; the
                  per-syscall breakdown is printed below the table
  (per sample: per stack really captured, the repeats a late tick makes
  for the ticks it stands in for left out)
  Ir/sample       user-space instructions of the sampler thread per sample:
                  the host under valgrind --tool=callgrind
                  --instr-atstart=no --separate-threads=yes, instrumented
                  with callgrind_control -i on, counters zeroed, dumped
                  --callgrind-seconds later; the thread whose dump holds
                  sampler_main (else valgrind's thread 2), its Ir divided
                  by the samples of the window
                  (callgrind slows the host some 50x: it reaches tens of
                  Hz.  Work paced by the clock, not by samples (stats,
                  socket I/O, the alone check: cg_timed; the flush every
                  50 ms is left per sample, an overstatement) is taken per
                  second and spread over the 1,000 samples a second the row
                  names; the row below shows both parts, and the raw
                  all-Ir-over-samples figure.  The copy method is forced
                  to --copy, else to the one the probe picked in the
                  rounds (seen in their system calls): under valgrind the
                  probe would time valgrind's emulation instead)
  work_ns/sample  the agent's work_ns delta / samples delta, median over the
                  stats reports (one a second) of a --window-seconds window
  cpu/sample      sampler_ns delta / samples delta, the same way
  floor           a bare thread's timer wake-up at 1 kHz (build/bench/wakeup
                  1000 N): once during the work/cpu window, beside the
                  sampler (the same load), and once alone just before it
  cpu - floor     cpu/sample minus the floor measured during its window
  32 thr @100 Hz  32 spinning threads sampled at 100 Hz: sampler_ns delta /
                  samples delta (per thread-sample)

The "today" column is the agent built from git commit --base (default
c43f98f, the landed state before the capture work: `git archive` into
build/bench/base-<commit>/, only the agent built there); "now" is this tree.
Rounds alternate floor, today, floor, now (A B A B) --rounds times; each
figure is the median over rounds with [min, max].  A commit missing from
the clone gives "n/a".  The timing-driven figures are machine-dependent;
the script prints a table and never fails on timing.

Takes about 7 minutes with the defaults (3 rounds, 2 readers, 2 builds,
callgrind once per reader and build) on a 2-core VM.

--copy pvr|pipe|mem forces the direct reader's copy method in both builds
(PROFAGENT_DIRECT_COPY); by default each build's probe picks.

  capture.py [--pythons LABEL,...] [--readers direct,gil] [--rounds N]
             [--base COMMIT] [--copy pvr|pipe|mem] [--no-callgrind]
             [--no-strace] [--json FILE] [--callgrind-keep DIR]
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import harness  # noqa: E402

WORKLOAD = os.path.join(ROOT, "tests", "workloads", "capture.py")
WAKEUP = os.path.join(ROOT, "build", "bench", "wakeup")
TARGETS = {"syscalls": "<= 2", "ir": "<= 3,000", "work": "<= 3 us",
           "ir_tick": "-", "ir_timed": "-", "ir_raw": "-",
           "cpu": "-", "over": "<= 3 us", "floor": "-", "floor_during": "-",
           "t32": "<= 1.5 us"}


def log(msg):
    print("capture: " + msg, file=sys.stderr, flush=True)


def pythons():
    out = subprocess.run(["sh", os.path.join(ROOT, "tests", "pythons.sh")],
                         stdout=subprocess.PIPE, universal_newlines=True).stdout
    return [l.split(" ", 1) for l in out.splitlines() if l.strip()]


def build_agent(tree, label, py):
    """Builds the agent of source tree `tree` for `py`; its directory."""
    d = os.path.join(ROOT, "build", "bench", label) \
        if tree == ROOT else os.path.join(tree, "build", label)
    subprocess.run(["make", "-s", "--no-print-directory", "agent",
                    "PYTHON=" + py, "AGENTDIR=" + d], cwd=tree, check=True,
                   stdout=subprocess.DEVNULL)
    return d


def base_tree(commit):
    """The agent's sources at `commit`, unpacked once; None if unknown."""
    r = subprocess.run(["git", "-C", ROOT, "rev-parse", "--verify", "-q",
                        commit + "^{commit}"], stdout=subprocess.PIPE,
                       universal_newlines=True)
    if r.returncode != 0:
        return None
    full = r.stdout.strip()
    tree = os.path.join(ROOT, "build", "bench", "base-" + full[:12])
    if not os.path.exists(os.path.join(tree, ".unpacked")):
        shutil.rmtree(tree, ignore_errors=True)
        os.makedirs(tree)
        ls = subprocess.run(["git", "-C", ROOT, "ls-tree", "--name-only",
                             full], stdout=subprocess.PIPE,
                            universal_newlines=True, check=True).stdout.split()
        paths = [p for p in ("agent", "proto", "Makefile", "mk") if p in ls]
        arch = subprocess.run(["git", "-C", ROOT, "archive", full] + paths,
                              stdout=subprocess.PIPE, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tree], input=arch, check=True)
        open(os.path.join(tree, ".unpacked"), "w").close()
    return tree


def floor_start(ticks=2000):
    """Starts a bare timer thread at 1 kHz for `ticks` ticks."""
    return subprocess.Popen([WAKEUP, "1000", str(ticks)],
                            stdout=subprocess.PIPE, universal_newlines=True)


def floor_us(p):
    """Its CPU time a wake-up, in us."""
    out = p.communicate(timeout=120)[0]
    m = re.search(r"Hz: ([0-9.]+) us", out)
    return float(m.group(1)) if m else None


class Host:
    """One workload process under the agent, and its stats reports."""

    def __init__(self, ctx, agent_dir, reader, args, wrap=None, env=None):
        self.ctx = ctx
        e = dict(os.environ)
        e.pop("PYTHONPATH", None)
        e.update(PYTHONPATH=os.pathsep.join(
            [agent_dir, os.path.join(agent_dir, "profagent", "_boot")]),
            PROFAGENT_AUTO="1", PROFD_RUNTIME_DIR=ctx.rt,
            PROFAGENT_READER=reader, PROFAGENT_QUIET="1",
            PYTHONUNBUFFERED="1")
        e.update(env or {})
        self.proc = ctx.spawn((wrap or []) + [ctx.python, WORKLOAD] + args,
                              env=e)
        self.pid = self.proc.pid
        self.reports = []       # (local monotonic time, stats), on change

    def poll(self):
        for a in self.ctx.ctl_json("status")["agents"]:
            if a["pid"] == self.pid and a.get("stats"):
                s = a["stats"]
                if not self.reports or self.reports[-1][1] != s:
                    self.reports.append((time.monotonic(), s))
                return s
        return None

    def wait_steady(self, timeout=120, reports=2):
        """Until the workload is ready and `reports` stats reports with
        samples have come in since."""
        ready = []

        def steady():
            if self.proc.poll() is not None:
                raise harness.TestFailure("host exited: %s"
                                          % self.ctx.output(self.proc)[-500:])
            if not ready:
                if "ready" in self.ctx.output(self.proc):
                    ready.append(time.monotonic())
                return False
            self.poll()
            return sum(1 for t, s in self.reports
                       if t > ready[0] and s["samples"] > 0) >= reports
        harness.wait_until(steady, timeout, "the agent's stats", step=0.1)

    def collect(self, seconds, reports=0, timeout=60):
        """Polls stats reports for `seconds`, and on until `reports` new
        ones have come in (a starved sampler reports late), at most
        `timeout` seconds."""
        t0 = time.monotonic()
        n0 = len(self.reports)
        while time.monotonic() < t0 + seconds or (
                len(self.reports) < n0 + reports and
                time.monotonic() < t0 + timeout):
            self.poll()
            time.sleep(0.05)

    def at(self, t, key):
        """A counter at local time t, interpolated between reports."""
        r = self.reports
        get = real if key == "real" else (lambda s: s[key])
        for (t0, s0), (t1, s1) in zip(r, r[1:]):
            if t0 <= t <= t1:
                return get(s0) + (get(s1) - get(s0)) * (t - t0) / (t1 - t0)
        return None

    def per_sample(self, since, key, scale=1.0):
        """Median over report-to-report windows after `since` of
        delta(key) / delta(samples)."""
        r = [x for x in self.reports if x[0] >= since]
        v = [(s1[key] - s0[key]) * scale / (real(s1) - real(s0))
             for (_, s0), (_, s1) in zip(r, r[1:])
             if real(s1) > real(s0)]
        return statistics.median(v) if v else None

    def sampler_tid(self):
        task = "/proc/%d/task" % self.pid
        for tid in os.listdir(task):
            try:
                with open(os.path.join(task, tid, "comm")) as f:
                    if f.read().strip() == "profagent":
                        return int(tid)
            except OSError:
                pass
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)


def copy_env(a):
    """The environment that forces --copy, if given."""
    return {"PROFAGENT_DIRECT_COPY": a.copy} if a.copy else {}


def parse_strace(path):
    calls = {}
    with open(path) as f:
        for line in f:
            t = line.split()
            if len(t) == 2 and t[0].isdigit() and t[1] != "total":
                calls[t[1]] = calls.get(t[1], 0) + int(t[0])
    return calls


def run_1k(ctx, agent_dir, reader, a):
    """One CPU-bound thread at 1 kHz: work, cpu, syscalls per tick."""
    ctx.ctl("reset")
    ctx.ctl("start", "--rate", 1000, "--mode", "wall")
    h = Host(ctx, agent_dir, reader, ["--seconds", "600"], env=copy_env(a))
    res = {}
    try:
        h.wait_steady()
        t0 = time.monotonic()
        fl = floor_start(int(a.window_seconds * 1000))
        h.collect(a.window_seconds, reports=3)
        res["floor_during"] = floor_us(fl)
        res["work_us"] = h.per_sample(t0, "work_ns", 1e-3)
        res["cpu_us"] = h.per_sample(t0, "sampler_ns", 1e-3)
        res["rate"] = h.reports[-1][1]["achieved_mhz"] / 1000.0
        tid = h.sampler_tid()
        if a.strace and tid and shutil.which("strace"):
            out = os.path.join(ctx.tmp, "strace.txt")
            st = subprocess.Popen(["strace", "-qq", "-c", "-U", "calls,name",
                                   "-o", out, "-p", str(tid)])
            try:
                ta = time.monotonic()
                h.collect(a.strace_seconds)
                tb = time.monotonic()
            finally:
                st.send_signal(signal.SIGINT)
                st.wait(60)
            h.collect(0, reports=1)     # a report after tb
            k0, k1 = h.at(ta, "ticks"), h.at(tb, "ticks")
            calls = parse_strace(out)
            if k0 is not None and k1 is not None and k1 > k0:
                res["ticks"] = k1 - k0
                res["calls"] = calls
                res["syscalls"] = sum(calls.values()) / (k1 - k0)
    finally:
        h.stop()
    return res


def run_32(ctx, agent_dir, reader, a):
    """32 spinning threads at 100 Hz: sampler CPU per thread-sample."""
    ctx.ctl("reset")
    ctx.ctl("start", "--rate", 100, "--mode", "wall")
    h = Host(ctx, agent_dir, reader, ["--threads", "32", "--seconds", "600"],
             env=copy_env(a))
    try:
        h.wait_steady()
        t0 = time.monotonic()
        h.collect(a.window_seconds, reports=3)
        r = [s for t, s in h.reports if t >= t0]
        dt = r[-1]["ticks"] - r[0]["ticks"] if r else 0
        return {"t32_us": h.per_sample(t0, "sampler_ns", 1e-3),
                "t32_per_tick": (real(r[-1]) - real(r[0])) / dt
                if dt else None}
    finally:
        h.stop()


def picked(runs):
    """The copy method the probe picked at full speed, from the system calls
    the sampler made in the strace windows (pvr without them)."""
    calls = {}
    for r in runs:
        for c, n in r.get("calls", {}).items():
            calls[c] = calls.get(c, 0) + n
    for call, how in (("process_vm_readv", "pvr"), ("writev", "pipe"),
                      ("pread64", "mem")):
        if calls.get(call):
            return how
    return "pvr"


def run_callgrind(ctx, agent_dir, reader, a, how="pvr"):
    """Instructions of the sampler thread per sample, under callgrind.  The
    copy method is forced to `how` (--copy, else what the probe picked at
    full speed in the rounds): under valgrind the probe would time
    valgrind's emulation of each method, not the machine's."""
    ctx.ctl("reset")
    ctx.ctl("start", "--rate", 1000, "--mode", "wall")
    cg = tempfile.mkdtemp(prefix="cg-", dir=ctx.tmp)
    out = os.path.join(cg, "cg.out")
    h = Host(ctx, agent_dir, reader, ["--seconds", "900"],
             wrap=["valgrind", "--tool=callgrind", "--instr-atstart=no",
                   "--separate-threads=yes", "--fair-sched=yes",
                   "--callgrind-out-file=" + out],
             env={"PROFAGENT_DIRECT_COPY": how})
    ctl = lambda *x: subprocess.run(["callgrind_control"] + list(x) +
                                    [str(h.pid)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, timeout=120, check=True)
    try:
        h.wait_steady(timeout=300)
        ctl("-i", "on")
        h.collect(2)
        ctl("-z")
        ta = time.monotonic()
        h.collect(a.callgrind_seconds)
        tb = time.monotonic()
        ctl("-d")
        h.collect(0, reports=1)
        n0, n1 = h.at(ta, "real"), h.at(tb, "real")
        # The sampler thread: the one running sampler_main, else valgrind's
        # thread 2 (the agent starts it before the workload's own threads).
        ir, dump = {}, {}
        for f in os.listdir(cg):
            with open(os.path.join(cg, f), errors="replace") as fh:
                text = fh.read()
            m = re.search(r"^summary: (\d+)", text, re.M)
            t = re.search(r"^thread: (\d+)", text, re.M)
            if m and "sampler_main" in text:
                ir["main"] = int(m.group(1))
                dump["main"] = os.path.join(cg, f)
            elif m and t and t.group(1) == "2":
                ir["2"] = int(m.group(1))
                dump["2"] = os.path.join(cg, f)
        if a.callgrind_keep:
            keep = os.path.join(a.callgrind_keep, os.path.basename(cg))
            shutil.copytree(cg, keep)
            log("callgrind dumps kept in " + keep)
        path = dump.get("main", dump.get("2"))
        ir = ir.get("main", ir.get("2"))
        if ir is None or n0 is None or n1 is None or n1 <= n0:
            return {}
        n, secs = n1 - n0, tb - ta
        r = {"ir_raw": ir / n, "cg_samples": n, "cg_rate": n / secs}
        timed = cg_timed(path) if path else None
        if timed is not None and 0 <= timed <= ir:
            # Work paced by the clock, not by samples, weighs per second
            # what it weighed here; at the 1 kHz the row names it is spread
            # over 1,000 samples a second, not over callgrind's few dozen.
            r["ir_tick"] = (ir - timed) / n
            r["ir_timed_s"] = timed / secs
            r["ir"] = r["ir_tick"] + r["ir_timed_s"] / 1000.0
        else:
            r["ir"] = r["ir_raw"]
        return r
    finally:
        h.stop()


def cg_timed(path):
    """Ir of the sampler thread's work paced by the clock, not by samples:
    what sampler_main's calls of sampler_housekeep (stats each second,
    socket I/O) and of sampler_alone (every AGENT_ALONE_CHECK_NS) cost,
    less housekeep's own test of the clock, made every tick.  The flush
    every AGENT_FLUSH_NS stays per sample: it encodes and emits each
    sample, and its fixed part is left spread over callgrind's few samples
    a flush, which overstates it.  From callgrind_annotate's caller tree:
    the inclusive cost of each call edge.  None if the dump cannot be read
    that way."""
    try:
        out = subprocess.run(["callgrind_annotate", "--tree=caller",
                              "--inclusive=yes", "--auto=no", path],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             universal_newlines=True, timeout=120).stdout
        own = subprocess.run(["callgrind_annotate", "--inclusive=no",
                              "--auto=no", path],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             universal_newlines=True, timeout=120).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    fn = lambda text: re.sub(r"\s*\(\d[\d,]*x\)$", "",
                             text.split(" [")[0]).rsplit(":", 1)[-1]
    edges, callers = {}, []
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+([<*>])\s+(.*)$", line)
        if not m:
            if not line.strip():
                callers = []
            continue
        cost, kind, who = int(m.group(1).replace(",", "")), m.group(2), m.group(3)
        if kind == "<":
            callers.append((fn(who), cost))
        elif kind == "*":
            for c, v in callers:
                # An inlined header's share of a function shows up as a
                # call of the function by itself: not a call.
                if c != fn(who):
                    edges[(c, fn(who))] = max(edges.get((c, fn(who)), 0), v)
            callers = []
    self_cost = {}
    for line in own.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+([^=<>*\s].*)$", line)
        if m and ":" in m.group(2):
            k = fn(m.group(2))
            self_cost[k] = max(self_cost.get(k, 0),
                               int(m.group(1).replace(",", "")))
    keep = edges.get(("sampler_main", "sampler_housekeep"))
    if keep is None:
        return None
    keep += edges.get(("sampler_main", "sampler_alone"), 0)
    return keep - self_cost.get("sampler_housekeep", 0)


def real(s):
    """Stacks the sampler really captured: its samples less the repeats a
    late tick made for the ticks it stood in for."""
    return s["samples"] - s.get("samples_made_up", 0)


def stat(vals, spec):
    v = [x for x in vals if x is not None]
    if not v:
        return "-"
    m = format(statistics.median(v), spec)
    if len(v) == 1:
        return m
    return "%s [%s, %s]" % (m, format(min(v), spec), format(max(v), spec))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pythons", default="python3.11")
    ap.add_argument("--readers", default="direct,gil")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--base", default="c43f98f")
    ap.add_argument("--copy", choices=("pvr", "pipe", "mem"),
                    help="force the direct reader's copy method")
    ap.add_argument("--window-seconds", type=float, default=5.0)
    ap.add_argument("--strace-seconds", type=float, default=5.0)
    ap.add_argument("--callgrind-seconds", type=float, default=8.0)
    ap.add_argument("--no-callgrind", dest="callgrind", action="store_false")
    ap.add_argument("--callgrind-keep", metavar="DIR",
                    help="copy the callgrind dumps there (callgrind_annotate)")
    ap.add_argument("--no-strace", dest="strace", action="store_false")
    ap.add_argument("--json", help="also write the raw figures here")
    a = ap.parse_args()
    if a.callgrind and not (shutil.which("valgrind")
                            and shutil.which("callgrind_control")):
        log("valgrind not found: no Ir/sample row")
        a.callgrind = False
    want = set(filter(None, a.pythons.split(",")))
    if not os.path.exists(WAKEUP):
        os.makedirs(os.path.dirname(WAKEUP), exist_ok=True)
        subprocess.run(["cc", "-O2", "-o", WAKEUP,
                        os.path.join(ROOT, "bench", "wakeup.c")], check=True)
    t_start = time.monotonic()
    base = base_tree(a.base)
    if base is None:
        log("commit %s is not in this clone: the today column is n/a" % a.base)
    raw = []
    for label, py in pythons():
        if want and label not in want:
            continue
        builds = [("now", build_agent(ROOT, label, py))]
        if base:
            try:
                builds.insert(0, ("today", build_agent(base, label, py)))
            except subprocess.CalledProcessError as e:
                log("%s at %s does not build (%s): today is n/a"
                    % (label, a.base, e))
        for reader in a.readers.split(","):
            runs = {b: [] for b, _ in builds}
            cgs = {}
            for rnd in range(a.rounds):
                for name, d in builds:
                    ctx = harness.Ctx(py, d)
                    try:
                        ctx.start_daemon()
                        r = {"floor": floor_us(floor_start())}
                        r.update(run_1k(ctx, d, reader, a))
                        r.update(run_32(ctx, d, reader, a))
                        if r.get("cpu_us") is not None and \
                                r.get("floor_during"):
                            r["over_us"] = r["cpu_us"] - r["floor_during"]
                        runs[name].append(r)
                        log("%s %s %s round %d: %s" % (
                            label, reader, name, rnd + 1,
                            ", ".join("%s=%.2f" % (k, v) for k, v in
                                      sorted(r.items())
                                      if isinstance(v, float))))
                    except Exception as e:  # a bench reports, never fails
                        log("%s %s %s: %s" % (label, reader, name, e))
                    finally:
                        ctx.close()
            if a.callgrind:
                for name, d in builds:
                    ctx = harness.Ctx(py, d)
                    try:
                        ctx.start_daemon()
                        how = a.copy or picked(runs.get(name, []))
                        cgs[name] = run_callgrind(ctx, d, reader, a, how)
                        cgs[name]["copy"] = how
                        log("%s %s %s callgrind: %s" % (label, reader, name,
                                                        cgs[name]))
                    except Exception as e:
                        log("%s %s %s callgrind: %s" % (label, reader, name, e))
                    finally:
                        ctx.close()
            raw.append(dict(python=label, reader=reader, runs=runs,
                            callgrind=cgs))
    report(raw, a, base is not None)
    print("(%s; %.0f s)" % (time.strftime("%Y-%m-%d", time.gmtime()),
                            time.monotonic() - t_start))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(raw, f, indent=1)


def report(raw, a, have_base):
    rows = [
        ("syscalls per tick (strace -c, sampler thread)", "syscalls", ".2f"),
        ("user-space Ir per sample at 1 kHz (callgrind, sampler thread)",
         "ir", ",.0f"),
        ("  of which per tick (capture, interning, flush)", "ir_tick",
         ",.0f"),
        ("  of which paced by the clock, Ir a second / 1,000", "ir_timed",
         ",.0f"),
        ("  as measured at callgrind's rate (all Ir / samples)", "ir_raw",
         ",.0f"),
        ("work_ns per sample, us (median of 1 s reports)", "work", ".2f"),
        ("sampler CPU per sample, us", "cpu", ".1f"),
        ("wake-up floor, us a tick, during the window", "floor_during",
         ".1f"),
        ("wake-up floor, us a tick, alone just before", "floor", ".1f"),
        ("sampler CPU per sample minus the floor during, us", "over", ".1f"),
        ("32 threads at 100 Hz: sampler CPU per sample, us", "t32", ".2f"),
    ]
    keys = {"syscalls": "syscalls", "work": "work_us", "cpu": "cpu_us",
            "floor": "floor", "floor_during": "floor_during",
            "over": "over_us", "t32": "t32_us"}
    print("Capture cost, one CPU-bound host thread 20 frames deep, 1 kHz, "
          "wall mode; median [min, max] of %d alternating rounds%s"
          % (a.rounds, "; copy forced to " + a.copy if a.copy else ""))
    for g in raw:
        head = ["%s %s" % (g["python"], g["reader"]),
                "today (%s)" % a.base, "now", "target"]
        table = []
        for title, k, spec in rows:
            cells = []
            for name in ("today", "now"):
                if name == "today" and not have_base:
                    cells.append("n/a")
                elif k.startswith("ir"):
                    cg = g["callgrind"].get(name, {})
                    v = cg.get(k)
                    if k == "ir_timed":
                        v = cg.get("ir_timed_s")
                        v = v / 1000.0 if v is not None else None
                    cells.append(stat([v], spec))
                else:
                    cells.append(stat([r.get(keys[k]) for r in
                                       g["runs"].get(name, [])], spec))
            table.append([title] + cells + [TARGETS[k]])
        w = [max(len(r[i]) for r in table + [head]) for i in range(4)]
        line = lambda r: "| " + " | ".join(c.ljust(x) for c, x in zip(r, w)) + " |"
        print()
        print(line(head))
        print("|" + "|".join("-" * (x + 2) for x in w) + "|")
        for r in table:
            print(line(r))
        for name in ("today", "now"):
            rs = [r for r in g["runs"].get(name, []) if r.get("calls")]
            ticks = sum(r["ticks"] for r in rs)
            if not ticks:
                continue
            tot = {}
            for r in rs:
                for c, n in r["calls"].items():
                    tot[c] = tot.get(c, 0) + n
            print("  %s syscalls per tick: %s" % (name, ", ".join(
                "%s %.2f" % (c, n / ticks) for c, n in
                sorted(tot.items(), key=lambda x: -x[1]))))
        for name in ("today", "now"):
            cg = g["callgrind"].get(name)
            if cg:
                print("  %s callgrind window: %d samples at %.0f Hz, "
                      "copy by %s" % (name, cg["cg_samples"], cg["cg_rate"],
                                      cg.get("copy", "?")))
        for name in ("today", "now"):
            v = [r.get("rate") for r in g["runs"].get(name, [])
                 if r.get("rate")]
            t = [r.get("t32_per_tick") for r in g["runs"].get(name, [])
                 if r.get("t32_per_tick")]
            if v:
                print("  %s achieved rate at 1 kHz: %s Hz; 32 threads: %s "
                      "samples a tick" % (name, stat(v, ".0f"),
                                          stat(t, ".1f")))


if __name__ == "__main__":
    main()
