"""The figures, in the order they run. Each module has NAME and run(bench, backend) -> rows."""

from . import (
    bulk_enqueue,
    claim_scale,
    enqueue_latency,
    memory,
    pickup,
    prune,
    queue_settings,
    read_scale,
    release_dependents,
    throughput,
    watch,
)

FIGURES = {
    module.NAME: module
    for module in (
        throughput,
        bulk_enqueue,
        enqueue_latency,
        pickup,
        claim_scale,
        queue_settings,
        read_scale,
        memory,
        release_dependents,
        prune,
        watch,
    )
}
