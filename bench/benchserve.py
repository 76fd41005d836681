"""What every benchmark needs to run servers in child processes: a free port, and waiting until one is up."""

from __future__ import annotations

import asyncio
import socket
import subprocess

import aiohttp


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_up(url: str, proc: subprocess.Popen[bytes], *, any_answer: bool = False, tries: int = 600) -> None:
    """Poll ``url`` until it answers 200 (or, with ``any_answer``, answers at all)."""
    async with aiohttp.ClientSession() as s:
        for _ in range(tries):
            if proc.poll() is not None:
                raise RuntimeError("server exited during start-up")
            try:
                async with s.get(url) as resp:
                    await resp.read()
                    if any_answer or resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")
