"""A thread that alternates CPU work and sleep in equal slices of wall time.

  --seconds S   (default 5)   --slice MS (default 10)
cpu_part() burns the CPU for one slice, sleep_part() sleeps for one; both
are timed, and the real split is printed: cpu_share=<percent of wall time
in cpu_part>.  A wall-mode profiler should report that same split between
cpu_part and sleep_part.
"""
import argparse
import time


def cpu_part(until):
    x = 0
    while time.perf_counter() < until:
        x += 1
    return x


def sleep_part(seconds):
    time.sleep(seconds)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--slice", type=float, default=10.0)
    a = p.parse_args()
    s = a.slice / 1000.0
    cpu = slept = 0.0
    end = time.perf_counter() + a.seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        cpu_part(t0 + s)
        t1 = time.perf_counter()
        sleep_part(s)
        t2 = time.perf_counter()
        cpu += t1 - t0
        slept += t2 - t1
    print("cpu_share=%.2f" % (100.0 * cpu / (cpu + slept)), flush=True)


if __name__ == "__main__":
    main()
