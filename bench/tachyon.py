"""tachyon.py -- profd beside CPython 3.15's own sampling profiler.

`python3.15 -m profiling.sampling` ("Tachyon") ships with every 3.15.  Both
profile the same workload (tests/workloads/workload.py: one CPU-bound thread
20 frames deep, leaf_a and leaf_b splitting the work 70/30) at 10 kHz, in
turns (A B A B ...), never at once:

  profd    the workload run under the agent (direct reader), profd asked
           for 10 kHz; figures from the agent's own counters over the
           middle of the run (samples, sampler_ns, invalid, dropped)
  tachyon  the workload run bare, `python3.15 -m profiling.sampling attach
           PID -r 10khz -d S --collapsed`; samples from its output, its CPU
           time from the kernel (wait4 rusage of the attach process)

Each row: achieved / asked rate (profd: with the ticks a late tick stood
in for, whose count is beside), sampler CPU per stack really captured (us;
Tachyon: per sample it wrote), the 70/30
split error (points; within the binomial bound when under 2 sigma), and
what was dropped or invalid.  profd also on the other interpreters listed
(--pythons).  Never fails on timing.

  tachyon.py [--rounds N] [--seconds S] [--rate HZ] [--pythons LABEL,...]
"""
import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import harness  # noqa: E402

WORKLOAD = os.path.join(ROOT, "tests", "workloads", "workload.py")


def pythons():
    out = subprocess.run(["sh", os.path.join(ROOT, "tests", "pythons.sh")],
                         stdout=subprocess.PIPE, universal_newlines=True).stdout
    return dict(l.split(" ", 1) for l in out.splitlines() if l.strip())


def build(label, py):
    d = os.path.join("build", "bench", label)
    subprocess.run(["make", "-s", "--no-print-directory", "agent",
                    "PYTHON=" + py, "AGENTDIR=" + d], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return os.path.join(ROOT, d)


def split_err(a, b):
    """|leaf_a share - 70|, points, and 2 sigma of the binomial, points."""
    n = a + b
    if n == 0:
        return None, None
    return abs(100.0 * a / n - 70.0), 200.0 * math.sqrt(0.7 * 0.3 / n)


def agent_stats(ctx, pid):
    for a in ctx.ctl_json("status")["agents"]:
        if a["pid"] == pid:
            return a["stats"]
    return None


def profd_run(ctx, rate, seconds):
    ctx.ctl("reset")
    ctx.ctl("start", "--rate", rate, "--mode", "wall", "--reader", "direct")
    p = ctx.run_agent([WORKLOAD, "--seconds", str(seconds + 3)])
    time.sleep(1.5)
    s0, t0 = agent_stats(ctx, p.pid), time.monotonic()
    time.sleep(seconds)
    s1, t1 = agent_stats(ctx, p.pid), time.monotonic()
    p.wait(seconds * 10 + 60)
    ctx.wait_departed(p.pid)
    show = ctx.ctl_json("show", "--pid", p.pid, "--top", "0")
    fn = {f["function"]: f["self"] for f in show["functions"]}
    err, bound = split_err(fn.get("leaf_a", 0), fn.get("leaf_b", 0))
    if not s0 or not s1:
        return None
    n = s1["samples"] - s0["samples"]
    # CPU per stack really captured: a late tick's repeats left out.
    real = n - (s1["samples_made_up"] - s0["samples_made_up"])
    return {"rate": n / (t1 - t0), "cpu_us": (s1["sampler_ns"] -
            s0["sampler_ns"]) / max(real, 1) / 1000.0, "err": err,
            "bound": bound, "lost": "invalid %d, dropped %d, made up %d, "
            "missed %d" % tuple(s1[k] - s0[k] for k in (
                "invalid", "dropped", "made_up", "missed"))}


# Run by the interpreter under test: starts the workload, attaches Tachyon
# to it, prints Tachyon's exit code, wall time and CPU time (wait4).  Both
# must share one mount namespace (tests/pytree.sh), so Tachyon reads the
# workload's /proc/PID/maps paths as its own.
TACHYON_DRIVER = """
import os, subprocess, sys, time
py, wl, rate, secs, out = sys.argv[1:6]
w = subprocess.Popen([py, wl, "--seconds", str(int(secs) + 4)],
                     stdout=subprocess.DEVNULL)
time.sleep(1.5)
t = subprocess.Popen([py, "-m", "profiling.sampling", "attach", "-r", rate,
                      "-d", secs, "--collapsed", "-o", out, str(w.pid)],
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
t0 = time.monotonic()
_, status, ru = os.wait4(t.pid, 0)
wall = time.monotonic() - t0
log = t.stdout.read().decode(errors="replace")
w.kill(); w.wait()
print("RESULT %d %f %f" % (os.waitstatus_to_exitcode(status), wall,
                           ru.ru_utime + ru.ru_stime))
print(log[-400:])
"""


def tachyon_run(py, rate, seconds, tmp):
    out = os.path.join(tmp, "tachyon.txt")
    inner = subprocess.run([py, "-c", "import sys; print(sys.executable)"],
                           stdout=subprocess.PIPE,
                           universal_newlines=True).stdout.strip()
    r = subprocess.run([py, "-c", TACHYON_DRIVER, inner, WORKLOAD,
                        "%dhz" % rate,
                        str(int(seconds)), out], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    res = [l for l in r.stdout.splitlines() if l.startswith("RESULT ")]
    if not res or res[0].split()[1] != "0" or not os.path.exists(out):
        print("  tachyon failed: %s" % r.stdout[-400:])
        return None
    _, rc, wall, cpu = res[0].split()
    wall, cpu = float(wall), float(cpu)
    a = b = n = 0
    with open(out) as f:
        for line in f:
            stack, _, cnt = line.rstrip("\n").rpartition(" ")
            if not cnt.isdigit():
                continue
            c = int(cnt)
            n += c
            leaf = stack.split(";")[-1]
            if "leaf_a" in leaf:
                a += c
            elif "leaf_b" in leaf:
                b += c
    os.unlink(out)
    err, bound = split_err(a, b)
    return {"rate": n / seconds, "cpu_us": cpu / max(n, 1) * 1e6,
            "err": err, "bound": bound,
            "lost": "wall %.1f s for -d %g" % (wall, seconds)}


def row(name, rs, rate):
    rs = [r for r in rs if r]
    if not rs:
        print("| %-22s | failed |" % name)
        return
    def med(k):
        v = [r[k] for r in rs if r[k] is not None]
        return (statistics.median(v), min(v), max(v)) if v else (0, 0, 0)
    r, c, e = med("rate"), med("cpu_us"), med("err")
    print("| %-22s | %5.1f%% [%5.1f, %5.1f] | %6.1f [%6.1f, %6.1f] | "
          "%4.2f [%4.2f, %4.2f] (2 sigma %.2f) | %s |" % (
              name, 100 * r[0] / rate, 100 * r[1] / rate, 100 * r[2] / rate,
              c[0], c[1], c[2], e[0], e[1], e[2], rs[0]["bound"] or 0,
              "; ".join(x["lost"] for x in rs)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--rate", type=int, default=10000)
    p.add_argument("--pythons", default="sid-python3.15,python3.11")
    a = p.parse_args()
    have = pythons()
    labels = [l for l in a.pythons.split(",") if l in have]
    t15 = next((l for l in labels if l.endswith("3.15")), None)
    if not labels:
        print("tachyon.py: none of %s here (tests/pythons.sh)" % a.pythons)
        return
    subprocess.run(["make", "-s", "--no-print-directory", "daemon", "ctl"],
                   cwd=ROOT, check=True)
    print("\nprofd beside Tachyon (python3.15 -m profiling.sampling), "
          "%d Hz asked, %g s windows, %d rounds in turns; median [min, max]"
          % (a.rate, a.seconds, a.rounds))
    print("| who | achieved / asked | sampler CPU us/sample | 70/30 error, "
          "points | left out |")
    print("|---|---|---|---|---|")
    results = {}
    for label in labels:
        agent = build(label, have[label])
        for i in range(a.rounds):
            ctx = harness.Ctx(have[label], agent)
            try:
                ctx.start_daemon()
                results.setdefault("profd " + label, []).append(
                    profd_run(ctx, a.rate, a.seconds))
            finally:
                ctx.close()
            if label == t15:
                with tempfile.TemporaryDirectory() as tmp:
                    results.setdefault("tachyon " + label, []).append(
                        tachyon_run(have[label], a.rate, a.seconds, tmp))
    for name, rs in results.items():
        row(name, rs, a.rate)


if __name__ == "__main__":
    main()
