"""profctl show as a user meets it: windows side by side, an empty window,
--top's footer, --by names and headers, profd's own flag errors."""
import os
import subprocess
import time

from fakeagent import FakeAgent
from harness import BIN, check, once, wait_until

NS = 1000000000


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def stored(ctx):
    return ctx.ctl_json("status")["daemon"]["samples_stored"]


@once
def test_windows_side_by_side_never_count_a_bucket_twice(ctx):
    """One sample a second for 119 s in 10 s buckets: a diff of the minute
    before T against the minute after counts each sample once, both
    windows are printed, and together they hold what one show of the two
    minutes holds."""
    ctx.start_daemon()
    a = FakeAgent(ctx.rt, pid=7100, service="clock")
    th = a.thread("MainThread")
    st = a.stack(["main", "tick"])
    t = time.time_ns() // NS - 5          # a whole second, in the past
    for k in range(1, 120):
        a.samples(st, th, 1, t_ns=(t - k) * NS + NS // 2)
    a.flush()
    wait_until(lambda: stored(ctx) == 119, 10, "119 samples")
    both = ctx.ctl_json("show", "--since", iso(t - 120), "--until",
                        iso(t))["samples"]
    for cut in (t - 60, t - 57, t - 64):   # on a bucket's edge, or inside
        d = ctx.ctl_json("show", "--diff", "--since", iso(cut), "--until",
                         iso(t), "--base-since", iso(t - 120),
                         "--base-until", iso(cut))
        check(d["base_samples"] + d["samples"] == both >= 109,
              "cut at T-%d: %d + %d samples, %d in one window"
              % (t - cut, d["base_samples"], d["samples"], both))
        check(d["base_to_ns"] <= d["from_ns"], "the windows overlap: "
              "base to %d, now from %d" % (d["base_to_ns"], d["from_ns"]))
    out = ctx.ctl("show", "--diff", "--since", iso(t - 60), "--until",
                  iso(t), "--base-since", iso(t - 120), "--base-until",
                  iso(t - 60)).stdout.splitlines()
    check(out[0].startswith("baseline: ") and out[1].startswith("now: ")
          and " to " in out[0] and " to " in out[1],
          "the diff's windows: %r" % out[:2])
    # A window narrower than a bucket, inside one and short of its
    # middle, still reads the bucket it is in.
    b = (t - 40) // 10 * 10                # a 10 s bucket, all sampled
    narrow = ctx.ctl_json("show", "--since", iso(b + 1), "--until",
                          iso(b + 3))
    check(narrow["samples"] == 10, "2 s inside a 10 s bucket: %d samples"
          % narrow["samples"])
    # Two such windows side by side read that one bucket twice, and the
    # diff says so.
    d = ctx.ctl_json("show", "--diff", "--since", iso(b + 3), "--until",
                     iso(b + 5), "--base-since", iso(b + 1),
                     "--base-until", iso(b + 3))
    check("read the same buckets" in d.get("base_warning", ""),
          "no warning for windows inside one bucket: %r" % d)
    a.close()


@once
def test_an_empty_window_says_why_and_exits_1(ctx):
    ctx.start_daemon()
    a = FakeAgent(ctx.rt, pid=7101, service="quiet")
    a.samples(a.stack(["main", "work"]), a.thread("MainThread"), 5)
    a.flush()
    wait_until(lambda: stored(ctx) == 5, 10, "5 samples")
    r = ctx.ctl("show", "--service", "nosuch", ok=False)
    check(r.returncode == 1 and r.stdout == "" and "profiling is off" in
          r.stderr and "profctl start" in r.stderr, "off: %r" % (r,))
    ctx.ctl("start", "--mode", "wall")
    r = ctx.ctl("show", "--mode", "cpu", ok=False)
    check(r.returncode == 1 and "no cpu-mode samples" in r.stderr and
          "on in wall mode" in r.stderr, "another mode: %r" % (r,))
    r = ctx.ctl("show", "--thread", "nosuch", ok=False)
    check(r.returncode == 1 and "match" in r.stderr and
          "profiling is on" in r.stderr, "no match: %r" % (r,))
    r = ctx.ctl("show", "--format", "json", "--service", "nosuch")
    check(r.returncode == 0, "json of an empty window: %r" % (r,))
    a.close()


@once
def test_top_footer_and_by_names(ctx):
    ctx.start_daemon()
    a = FakeAgent(ctx.rt, pid=7102, service="rows")
    th = a.thread("MainThread")
    for i in range(4):
        a.samples(a.stack(["main", "f%d" % i]), th, 10 - i)
    a.flush()
    wait_until(lambda: stored(ctx) == 34, 10, "34 samples")
    out = ctx.ctl("show").stdout
    check("--top 0 shows all" not in out, "a footer under all the rows:\n"
          + out)
    out = ctx.ctl("show", "-n", "2").stdout
    check("(first 2 rows; --top 0 shows all)" in out and "f1 " in out and
          "f2 " not in out, "-n 2 of 5 rows:\n" + out)
    out = ctx.ctl("show", "-n", "5").stdout
    check("--top 0 shows all" not in out, "-n 5 of 5 rows:\n" + out)
    for prefix, view in (("func", "function"), ("proc", "process"),
                         ("th", "thread"), ("svc", "service")):
        d = ctx.ctl_json("show", "--by", prefix)
        check(d["view"] == view, "--by %s gave %r" % (prefix, d["view"]))
    r = ctx.ctl("show", "--by", "f", ok=False)
    check(r.returncode == 2 and "--by 'f'" in r.stderr, "--by f: %r" % (r,))
    head = ctx.ctl("show", "--by", "line").stdout.splitlines()[1]
    check("LINE" in head.split("TOTAL")[-1], "--by line's header: %r"
          % head)
    a.close()


@once
def test_profd_time_errors_give_examples_it_takes(ctx):
    profd = os.path.join(BIN, "profd")
    for flag, bad, want in (("--retention", "30s", "from 1m to 366d"),
                            ("--bucket", "2d", "from 1s to 1h")):
        r = subprocess.run([profd, "-r", ctx.rt, flag, bad],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=10)
        line = r.stderr.splitlines()[0] if r.stderr else ""
        like = line.split("(like ")[-1].split(")")[0].split(", ")
        check(r.returncode == 2 and want in line and bad not in like,
              "%s %s: exit %d, %r" % (flag, bad, r.returncode, line))
        for ex in like:
            ok = subprocess.run([profd, "-r", ctx.rt, flag, ex, "--help"],
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE,
                                universal_newlines=True, timeout=10)
            check(ok.returncode == 0, "%s %s, its own example, refused: %r"
                  % (flag, ex, ok.stderr))
