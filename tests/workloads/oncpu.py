"""oncpu.py -- threads whose CPU use is known, for cpu mode's tests.

  oncpu.py dutycycle BURN_MS IDLE_MS STATE_FILE
      one thread burns CPU in burn() for BURN_MS, then sleeps in idle() for
      IDLE_MS, forever; STATE_FILE gets the wall time spent in each so far
      ("burn_ns idle_ns"), rewritten every 50 ms.
  oncpu.py blocked STATE_FILE
      threads that block in C calls releasing the GIL (in_sleep, in_select,
      in_lock) and one that computes in a C call holding it (in_sum).
  oncpu.py busy2of8 STATE_FILE
      8 threads: busy_0 and busy_1 burn CPU, idle_0..5 wait on an Event.
STATE_FILE is written once everything runs (busy2of8: "0 TID TID", the
busy threads' kernel ids).
"""
import os
import select
import sys
import threading
import time

clock = time.perf_counter_ns
cpu = time.thread_time_ns
# dutycycle: wall ns in burn, wall ns in idle, CPU ns in burn, and the
# thread's CPU ns so far (its own Python between the calls, and on this
# kind of VM the wake-up from each sleep, burn CPU outside burn()).
totals = [0, 0, 0, 0]


def burn(ms, acc=None):
    # The CPU clock is read inside burn(), so that its cost is burn()'s.
    c0 = cpu() if acc is not None else 0
    end = clock() + ms * 1000000
    x = 0
    while clock() < end:
        x += 1
    if acc is not None:
        acc[2] += cpu() - c0
    return x


def idle(ms):
    time.sleep(ms / 1000.0)


def dutycycle(burn_ms, idle_ms):
    while True:
        t0 = clock()
        burn(burn_ms, totals)
        t1 = clock()
        idle(idle_ms)
        t2 = clock()
        totals[0] += t1 - t0
        totals[1] += t2 - t1


def in_sleep():
    while True:
        time.sleep(10)


def in_select():
    r, w = os.pipe()
    while True:
        select.select([r], [], [], 10)


def in_lock():
    lock = threading.Lock()
    lock.acquire()
    while True:
        lock.acquire(timeout=10)


def in_sum():
    while True:
        sum(range(10 ** 7))


tids = []


def busy(i):
    tids.append(threading.get_native_id())
    x = 0
    while True:
        x += i


def idle_wait(ev):
    while True:
        ev.wait(10)


def write_state(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    what, path = sys.argv[1], sys.argv[-1]
    threads = []
    if what == "dutycycle":
        threads.append(threading.Thread(
            target=dutycycle, args=(float(sys.argv[2]), float(sys.argv[3])),
            name="dutycycle", daemon=True))
    elif what == "blocked":
        for fn in (in_sleep, in_select, in_lock, in_sum):
            threads.append(threading.Thread(target=fn, name=fn.__name__,
                                            daemon=True))
    elif what == "busy2of8":
        ev = threading.Event()
        for i in range(2):
            # Distinct function names per thread, for the test to count.
            fn = eval("lambda: busy(%d)" % (i + 1))
            threads.append(threading.Thread(target=fn, name="busy_%d" % i,
                                            daemon=True))
        for i in range(6):
            threads.append(threading.Thread(target=idle_wait, args=(ev,),
                                            name="idle_%d" % i, daemon=True))
    for t in threads:
        t.start()
    if what == "busy2of8":
        while len(tids) < 2:
            time.sleep(0.01)
    write_state(path, " ".join(["0"] + [str(t) for t in tids]))
    while True:
        time.sleep(0.05)
        if what == "dutycycle":
            # The thread's CPU so far, read from here: no extra call in
            # the thread being profiled.
            totals[3] = time.clock_gettime_ns(
                time.pthread_getcpuclockid(threads[0].ident))
            write_state(path, "%d %d %d %d" % tuple(totals))


if __name__ == "__main__":
    main()
