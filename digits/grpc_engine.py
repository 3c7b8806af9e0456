"""Which of gRPC's I/O engines the services run on. Import this before anything imports grpc.

gRPC reads ``GRPC_EXPERIMENTS`` once, as it loads, so each service's entry point imports this
module first. Since 1.6x, gRPC's channels and servers do their socket I/O on its EventEngine,
which hands each read and write to a pool of its own threads; the older engine (iomgr) does
it on the thread that polls. Where waking another core is slow, as on this project's
benchmark VM (~40 µs, see docs/capacity.md), the extra hand-offs show: a paced health check
took 0.74 ms with the EventEngine and 0.61 ms without, and an upload at concurrency 1 about
0.35 ms less in all (two gRPC calls), with the same uploads/s at 16 and 64 at once.
``make bench`` measures the stack as it is configured here.

An operator's own ``GRPC_EXPERIMENTS`` wins. A gRPC release without these experiments
ignores them; re-measure when upgrading grpcio.
"""

from __future__ import annotations

import os
import sys
import warnings

EXPERIMENTS = "-event_engine_client,-event_engine_listener"

if "grpc" in sys.modules:  # too late to choose: say so rather than seem to have chosen
    warnings.warn("digits.grpc_engine was imported after grpc; GRPC_EXPERIMENTS is unchanged", stacklevel=2)
else:
    os.environ.setdefault("GRPC_EXPERIMENTS", EXPERIMENTS)
