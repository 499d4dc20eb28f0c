"""DecodePool: a worker that dies or runs past the hard budget costs only its task."""

from __future__ import annotations

import time

from data import pool_tasks
from gendet.data.decode import TIMEOUT, WORKER_DIED
from gendet.data.decode_pool import DecodePool


def test_a_dead_worker_fails_only_its_task_and_is_replaced() -> None:
    with DecodePool(2, timeout_s=30) as pool:
        futures = [pool.submit(pool_tasks.die if i == 3 else pool_tasks.echo, i) for i in range(8)]
        outcomes = [pool.outcome(f) for f in futures]
    assert [v for v, e in outcomes if e is None] == [0, 1, 2, 4, 5, 6, 7]
    value, error = outcomes[3]
    assert value is None and error.kind == WORKER_DIED and "SIGKILL" in error.reason
    assert pool.replaced == 1


def test_the_hard_budget_stops_code_stuck_in_c() -> None:
    with DecodePool(1, timeout_s=0.2, grace_s=0.3) as pool:
        t = time.perf_counter()
        stuck = pool.submit(pool_tasks.busy_in_c, 1)
        after = pool.submit(pool_tasks.echo, 2)
        value, error = pool.outcome(stuck)
        assert error is not None and error.kind == TIMEOUT and "stopped and replaced" in error.reason
        assert pool.outcome(after) == (2, None)
    assert time.perf_counter() - t < 20


def test_renew_starts_fresh_workers_and_lets_the_old_ones_finish() -> None:
    with DecodePool(1, timeout_s=30) as pool:
        before = pool.submit(pool_tasks.pid, 0)
        old_pid = pool.outcome(before)[0]
        in_flight = pool.submit(pool_tasks.echo, 7)
        pool.renew()
        assert pool.outcome(in_flight) == (7, None)
        assert pool.outcome(pool.submit(pool_tasks.pid, 0))[0] != old_pid


def test_workers_killed_from_outside_busy_or_idle_cost_only_the_task_they_held() -> None:
    import os
    import signal

    with DecodePool(2, timeout_s=30) as pool:
        futures = [pool.submit(pool_tasks.nap, i) for i in range(4)]
        time.sleep(0.5)  # both workers are inside their first nap
        victim = pool._pool[0]
        os.kill(victim.proc.pid, signal.SIGKILL)
        outcomes = [pool.outcome(f) for f in futures]
        died = [i for i, (_, e) in enumerate(outcomes) if e is not None]
        assert len(died) == 1 and outcomes[died[0]][1].kind == WORKER_DIED
        assert sorted(v for v, e in outcomes if e is None) == sorted(set(range(4)) - set(died))
        for w in list(pool._pool):  # idle now: killing them loses nothing
            os.kill(w.proc.pid, signal.SIGKILL)
        time.sleep(0.3)
        assert [pool.outcome(pool.submit(pool_tasks.echo, i)) for i in range(3)] == [(i, None) for i in range(3)]


def test_cancel_stops_a_running_task_and_the_worker_is_replaced() -> None:
    with DecodePool(1, timeout_s=30) as pool:
        running = pool.submit(pool_tasks.nap, 1)
        queued = pool.submit(pool_tasks.echo, 2)
        time.sleep(0.3)
        t = time.perf_counter()
        pool.cancel(running)
        value, error = pool.outcome(running)
        assert value is None and error.reason == "cancelled" and time.perf_counter() - t < 0.9
        assert pool.outcome(queued) == (2, None)


def test_a_script_without_a_main_guard_is_not_run_again_in_its_decoders(tmp_path) -> None:
    """Before Python 3.13 each decoder the forkserver forked ran the parent's script first (gh-126631): its
    imports again, and an unguarded script's own pool in every decoder, which failed forever."""
    import subprocess
    import sys

    marker = tmp_path / "ran.txt"
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import os\n"
        f"open({str(marker)!r}, 'a').write(f'{{os.getpid()}}\\n')\n"
        "from gendet.data.decode_pool import DecodePool\n"
        "def here():\n"
        "    return 1\n"
        "with DecodePool(1, timeout_s=30) as pool:\n"
        "    worker, error = pool.outcome(pool.submit(os.getpid))\n"
        "    _, not_loadable = pool.outcome(pool.submit(here))\n"
        "print(worker, error, os.getpid())\n"
        "print(not_loadable.reason)\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    first, second = out.stdout.splitlines()
    worker, error, parent = first.split()
    assert error == "None" and worker != parent
    # a function of the script itself cannot run there, and says so (the decoder lives on)
    assert second.startswith("decoder cannot load the task: AttributeError")
    assert marker.read_text().split() == [parent]  # the script ran once: in the parent, not in its decoder
