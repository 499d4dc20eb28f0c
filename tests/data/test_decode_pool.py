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
