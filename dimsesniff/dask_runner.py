"""Run shards on Dask: a local cluster of worker processes, or an existing distributed cluster.

Only glue: what a shard does and how shards merge is ``sharding.py``.  Dask is
imported here, lazily, so that the CLI starts without it and a serial run
never needs it.  Every failure to reach or use Dask becomes a
``ShardingError`` with one line for the user.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from .sharding import Runner, ShardingError, ShardResult, ShardTask
from .sources import CaptureError

SCHEMES = ("tcp", "tls", "inproc", "ucx", "ws", "wss")
CONNECT_TIMEOUT = "10s"
SHARED_FILES = (
    "every Dask worker must be able to read the capture files at the same path "
    "(shared storage) and have dimsesniff installed"
)


def worker_count(value: str | int | None) -> int:
    """``--workers``: N, ``all`` or -1 for every CPU; 0 and 1 mean serial."""
    if value is None:
        return 0
    text = str(value).strip().lower()
    if text in ("all", "-1"):
        return os.cpu_count() or 1
    try:
        count = int(text)
    except ValueError:
        raise ShardingError(f"--workers {value}: expected a number, 'all' or -1") from None
    if count < 0:
        raise ShardingError(f"--workers {value}: expected a number >= 0, 'all' or -1")
    return count


def check_address(address: str) -> str:
    """``--scheduler``: a Dask scheduler address such as ``tcp://10.0.0.5:8786``."""
    parts = urlsplit(address.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in SCHEMES or not parts.hostname or port is None:
        raise ShardingError(
            f"--scheduler {address}: expected a Dask scheduler address like tcp://HOST:8786"
        )
    return address.strip()


def _import_distributed():
    try:
        import distributed
    except ImportError as exc:
        raise ShardingError(
            f"--workers/--scheduler need Dask: pip install 'dask[distributed]' ({exc})"
        ) from None
    return distributed


def _run_task(task: ShardTask, ship: bool) -> ShardResult:
    """On a worker: run one shard; with ``ship``, spool to a local temp file and return its
    bytes (the worker may not see the client's output directory)."""
    if not ship:
        return task()
    fd, name = tempfile.mkstemp(suffix=".spool", prefix="dimsesniff-")
    os.close(fd)
    local = Path(name)
    try:
        task.spool = local
        result = task()
        result.payload = local.read_bytes()
        result.spool = None
        return result
    finally:
        local.unlink(missing_ok=True)


def _gather(client, tasks: list[ShardTask], ship: bool, where: str) -> list[ShardResult]:
    futures = [
        client.submit(_run_task, task, ship, pure=False, key=f"dimsesniff-shard-{task.index}")
        for task in tasks
    ]
    try:
        return client.gather(futures)
    except CaptureError as exc:
        if not ship:  # the files were opened here first: their content is at fault
            raise
        raise ShardingError(f"{exc} on a Dask worker ({SHARED_FILES})") from None
    except OSError as exc:
        if exc.filename is not None:  # a capture a worker could not open
            raise ShardingError(
                f"{exc.filename}: {exc.strerror or exc} on a Dask worker ({SHARED_FILES})"
            ) from None
        raise ShardingError(f"{where}: {exc}") from None
    finally:
        for future in futures:
            future.cancel()


def local_runner(workers: int) -> Runner:
    """Shards on a ``LocalCluster`` of ``workers`` processes, one thread each, on 127.0.0.1."""

    def run(tasks: list[ShardTask]) -> list[ShardResult]:
        distributed = _import_distributed()
        with contextlib.ExitStack() as stack:
            try:
                cluster = stack.enter_context(
                    distributed.LocalCluster(
                        n_workers=workers,
                        threads_per_worker=1,
                        processes=True,
                        host="127.0.0.1",
                        dashboard_address=None,
                        silence_logs=50,
                    )
                )
                client = stack.enter_context(distributed.Client(cluster))
            except (OSError, TimeoutError, RuntimeError) as exc:
                raise ShardingError(f"cannot start a local Dask cluster: {exc}") from None
            return _gather(client, tasks, ship=False, where="local Dask cluster")

    return run


def remote_runner(address: str) -> Runner:
    """Shards on the Dask cluster whose scheduler is at ``address``; spools come back as bytes."""
    address = check_address(address)

    def run(tasks: list[ShardTask]) -> list[ShardResult]:
        distributed = _import_distributed()
        try:
            client = distributed.Client(address, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise ShardingError(
                f"cannot reach the Dask scheduler at {address}: {exc or type(exc).__name__}"
            ) from None
        with client:
            return _gather(client, tasks, ship=True, where=f"Dask cluster {address}")

    return run


def cluster_threads(address: str) -> int:
    """Worker threads of the cluster at ``address`` (how many shards to cut by default)."""
    distributed = _import_distributed()
    try:
        with distributed.Client(check_address(address), timeout=CONNECT_TIMEOUT) as client:
            return max(1, sum(client.nthreads().values()))
    except (OSError, TimeoutError) as exc:
        raise ShardingError(
            f"cannot reach the Dask scheduler at {address}: {exc or type(exc).__name__}"
        ) from None


__all__ = ["check_address", "cluster_threads", "local_runner", "remote_runner", "worker_count"]
