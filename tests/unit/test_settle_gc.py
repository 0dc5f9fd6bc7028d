"""What `serverprep serve` does to the garbage collector once it is up (service.server.settle_gc).

Proves what the function does in this process; the bench shows what it is for (bench/README.md,
fifth round: full collections during the log bench before and after).
"""

import gc

from serverprep.service import server


def test_start_up_objects_leave_the_collectors_sight_and_the_youngest_generation_is_collected_less_often():
    threshold = gc.get_threshold()
    tracked = len(gc.get_objects())  # what a full collection visits
    try:
        server.settle_gc()
        assert gc.get_freeze_count() >= tracked * 0.9
        assert len(gc.get_objects()) < tracked * 0.1
        assert gc.get_threshold() == (server.GC_YOUNGEST, *threshold[1:])
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1  # garbage made since is still collected
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
