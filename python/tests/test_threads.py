"""Ember releases the GIL while it computes: another Python thread makes progress during a
long product, and tensors are shared by threads safely."""

import threading
import time

import ember


def test_a_long_matmul_lets_other_python_threads_run():
    a = ember.randn(1024, 1024)
    ticks = []
    done = threading.Event()

    def count():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    counter = threading.Thread(target=count)
    counter.start()
    time.sleep(0.01)
    start = time.perf_counter()
    for _ in range(6):
        a = (a @ a) * (1.0 / 32.0)
    end = time.perf_counter()
    done.set()
    counter.join()
    during = [t for t in ticks if start < t < end]
    # With the GIL held for the whole products the counter could not tick in between.
    assert len(during) >= 3, f"{len(during)} ticks in {end - start:.3f} s of products"


def test_threads_share_tensors():
    x = ember.randn(64, 64)
    want = (x @ x).sum().item()
    results = []

    def work():
        for _ in range(20):
            results.append((x @ x).sum().item())

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 80 and all(r == want for r in results)
