# Python's process and thread machinery (issue 3's acceptance script): a
# multiprocessing Pool (fork, pipes, SemLock = futexes in a MAP_SHARED file
# in /dev/shm), 8 threads on a Condition feeding a Queue, a subprocess
# pipeline through the shell, and signal.alarm with a Python handler.
import multiprocessing
import queue
import signal
import subprocess
import threading
import time


def square(x):
    return x * x


def main():
    with multiprocessing.Pool(4) as pool:
        print("pool:", pool.map(square, range(12)))

    cond = threading.Condition()
    released = []
    results = queue.Queue()

    def worker(i):
        with cond:
            cond.wait_for(lambda: released)
        results.put(i * 10)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    with cond:
        released.append(True)
        cond.notify_all()
    for t in threads:
        t.join()
    print("threads:", sorted(results.get() for _ in range(8)))

    pipeline = subprocess.run(
        "printf 'b\\na\\nc\\n' | sort | tr a-z A-Z",
        shell=True, capture_output=True, text=True, check=True)
    print("pipeline:", pipeline.stdout.split())
    child = subprocess.run(["sh", "-c", "exit 3"])
    print("child status:", child.returncode)

    caught = []
    signal.signal(signal.SIGALRM, lambda signo, frame: caught.append(signo))
    signal.alarm(1)
    time.sleep(3)
    print("alarm:", caught == [signal.SIGALRM])

    lock = multiprocessing.Lock()
    value = multiprocessing.Value("i", 0)

    def bump(n):
        for _ in range(n):
            with lock:
                value.value += 1

    procs = [multiprocessing.Process(target=bump, args=(200,)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    print("shared counter:", value.value, [p.exitcode for p in procs])


if __name__ == "__main__":
    main()
