"""A thread that burns the CPU in short bursts between sleeps, for cpu
mode's weights.  Run: bursts.py BURN_MS SLEEP_MS SECONDS GO_FILE

The thread named "bursts" waits until GO_FILE exists, then for SECONDS
alternates burn() (BURN_MS of CPU-bound Python) and time.sleep(SLEEP_MS),
and prints cpu_ns=<its CPU time over those SECONDS> (time.thread_time_ns:
the wake-ups from each sleep included, as the kernel counts them).
"""
import os
import sys
import threading
import time


def burn(ms):
    end = time.perf_counter() + ms / 1000.0
    x = 0
    while time.perf_counter() < end:
        x += 1
    return x


def bursts(burn_ms, sleep_ms, seconds, go, out):
    while not os.path.exists(go):
        time.sleep(0.01)
    c0 = time.thread_time_ns()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        burn(burn_ms)
        time.sleep(sleep_ms / 1000.0)
    out.append(time.thread_time_ns() - c0)


def main():
    burn_ms, sleep_ms, seconds = (float(x) for x in sys.argv[1:4])
    out = []
    t = threading.Thread(target=bursts, name="bursts",
                         args=(burn_ms, sleep_ms, seconds, sys.argv[4], out))
    t.start()
    t.join()
    print("cpu_ns=%d" % out[0], flush=True)


if __name__ == "__main__":
    main()
