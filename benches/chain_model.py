#!/usr/bin/env python3
"""A model of delta chains under scattered row updates, for choosing how a chunk at its chain limit takes
its next base (src/repo/bases.rs `choose_base`; docs/design.md "Bounded chains").

Each chunk holds R rows; every day each row changes with probability p. A delta from the version of day s
to day t costs a header plus a fixed size per row changed in (s, t]; a whole chunk costs W. Depth limits are
drawn per day between LO and HI as the writer's per-id limits are. Printed: the mean cost of a day over the
run and over its last 5 days, in one-day deltas (what `zstd --patch-from=yesterday` stores), and the mean
chain depth (restore decodes depth + 1 chunks per chunk).

Policies: `fixed2` (re-anchor on the depth-2 ancestor: the rule before), `cost` (choose_base, mirrored
here), and the least total any choice reaches with a fixed depth limit and linear cost (dynamic program).

    python3 benches/chain_model.py [DAYS]
"""
import functools
import random
import statistics
import sys

ROWS, ROW_DELTA, ROW_WHOLE, HEADER = 340, 100, 95, 60


def choose_base(limit, sizes):
    """Mirror of bases.rs choose_base: 'itself', a depth, or None (whole)."""
    depth = len(sizes) - 1
    if depth < limit:
        return "itself"
    today, whole = min(sizes[1:]), sizes[0]
    best = ((whole + limit * today) / (limit + 1), None)
    above = 0
    for j in range(depth - 1, -1, -1):
        above += sizes[j + 1]
        if j + 1 > limit:
            continue
        room = limit - j - 1
        rate = (min(above + today, whole) + room * today) / (room + 1)
        if rate < best[0]:
            best = (rate, j)
    return best[1]


def fixed2(limit, sizes):
    return "itself" if len(sizes) - 1 < limit else 2


def run(policy, p, days, lo=4, hi=8, chunks=200, seed=1):
    rng = random.Random(seed)
    whole = ROWS * ROW_WHOLE + HEADER
    cost_by_day, depth_by_day = [0] * (days + 1), [0] * (days + 1)
    for _ in range(chunks):
        changed = [0] * ROWS  # the last day each row changed
        chain = [(0, whole)]  # (day, stored size), the whole chunk first
        for t in range(1, days + 1):
            for r in range(ROWS):
                if rng.random() < p:
                    changed[r] = t
            choice = policy(rng.randint(lo, hi), [c[1] for c in chain])
            j = len(chain) - 1 if choice == "itself" else choice
            size = whole if j is None else HEADER + ROW_DELTA * sum(1 for c in changed if c > chain[j][0])
            # The writer stores a delta only when it is smaller than the whole chunk.
            chain = [(t, whole)] if j is None or size >= whole else chain[: j + 1] + [(t, size)]
            cost_by_day[t] += min(size, whole)
            depth_by_day[t] += len(chain) - 1
    one_day = HEADER + ROW_DELTA * ROWS * p
    per_day = [c / chunks / one_day for c in cost_by_day[1:]]
    return statistics.mean(per_day), statistics.mean(per_day[-5:]), statistics.mean(depth_by_day[1:]) / chunks


@functools.lru_cache(None)
def least(limit, n):
    """Least total span of versions 1..n hung under a version 0, each within `limit` of it."""
    if n == 0:
        return 0
    if limit == 0:
        return float("inf")
    return _blocks(limit, n)


@functools.lru_cache(None)
def _blocks(limit, n):
    # Versions 1..n split into consecutive blocks; a block starting at day c has its first version based on
    # version 0 (span c) and the rest hung under it within limit - 1.
    if n == 0:
        return 0
    return min(_blocks(limit, c - 1) + c + least(limit - 1, n - c) for c in range(1, n + 1))


if __name__ == "__main__":
    days = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    sys.setrecursionlimit(10000)
    for p in (0.005, 0.02, 0.05):
        for name, policy in (("fixed2", fixed2), ("cost", choose_base)):
            mean, last5, depth = run(policy, p, days)
            print(f"p={p:<6} {name:7} days 1-{days}: {mean:.2f}x, last 5 days {last5:.2f}x, mean depth {depth:.1f}")
    for limit in (4, 6, 8):
        print(f"least with a fixed limit of {limit}, linear cost: {least(limit, days) / days:.2f}x")
