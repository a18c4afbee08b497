"""An open-loop HTTP load generator for ``bench/api.py``, run as its own process (not sharing the bench's
interpreter, GIL or garbage collector with anything else).

One asyncio loop on raw keep-alive HTTP/1.1 connections (opened and warmed before timing starts, never one
per request): request ``i`` of each stream is *scheduled* at ``i / rate`` s and its latency is counted from
that scheduled moment to the last byte of the answer, so a stall of the server or of this process shows
up in the figures (no coordinated omission). Several streams (path sets with their own rates) run
interleaved in the same seconds, so a baseline stream (``/health/live``) sees the same machine as the
route under test. The garbage collector is frozen and disabled while timing.

    python bench/http_load.py SPEC_JSON   (prints {"stream name": [latencies in s], ...} on stdout)
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from typing import Any
from urllib.parse import urlsplit


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def get(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status


async def _run(spec: dict[str, Any]) -> dict[str, list[float]]:
    base = urlsplit(spec["base"])
    host, port = base.hostname or "127.0.0.1", base.port or 80
    seconds = float(spec["seconds"])
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(int(spec.get("connections", 32))):
        idle.put_nowait(Connection(*await asyncio.open_connection(host, port)))

    def request(path: str, headers: dict[str, str]) -> bytes:
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", *(f"{k}: {v}" for k, v in headers.items())]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    streams = {
        name: [request(path, stream.get("headers", {})) for path in stream["paths"]]
        for name, stream in spec["streams"].items()
    }
    errors: list[str] = []

    async def one(connection_requests: list[bytes], index: int, scheduled: float, out: list[float]) -> None:
        connection = await idle.get()
        try:
            status = await connection.get(connection_requests[index % len(connection_requests)])
        finally:
            idle.put_nowait(connection)
        out.append(time.perf_counter() - scheduled)
        if status != 200:
            errors.append(f"status {status}")

    for requests in streams.values():  # warm every connection on every stream
        for _ in range(idle.qsize()):
            await one(requests, 0, time.perf_counter(), [])
    if errors:
        raise SystemExit(f"warm-up answered {errors[:3]}")

    results: dict[str, list[float]] = {name: [] for name in streams}
    schedule = sorted(
        (i / float(stream["rate"]), name, i)
        for name, stream in spec["streams"].items()
        for i in range(int(float(stream["rate"]) * seconds))
    )
    gc.collect()
    gc.freeze()
    gc.disable()
    tasks = []
    begin = time.perf_counter() + 0.1
    for offset, name, index in schedule:
        scheduled = begin + offset
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(streams[name], index, scheduled, results[name])))
    await asyncio.gather(*tasks)
    gc.enable()
    if errors:
        raise SystemExit(f"{len(errors)} answers were not 200: {errors[:3]}")
    return results


def run(spec: dict[str, Any]) -> dict[str, list[float]]:
    """Run ``spec`` in a child process; its latencies by stream."""
    import subprocess

    done = subprocess.run(  # noqa: S603 — this file with a JSON argument
        [sys.executable, __file__, json.dumps(spec)], capture_output=True, check=False, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"load generator failed: {done.stderr[-2000:]}")
    result: dict[str, list[float]] = json.loads(done.stdout)
    return result


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_run(json.loads(sys.argv[1])))))
