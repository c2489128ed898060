"""A script flush can land between loading a script and the call that follows (SCRIPT FLUSH, a
restart, a failover to a replica without the scripts): the call loads again and runs, up to
`RELOADS` times, on the lean client alone and in the batcher's pipelines; past that the
NOSCRIPT is an error (never a loop). A NOSCRIPT means the script did not run, so sending it
again is safe."""

from __future__ import annotations

import asyncio

import pytest
from django.conf import settings
from redis.exceptions import NoScriptError

from gateway.hotpath.resp import RespClient
from gateway.hotpath.scripts import RELOADS, Batcher, Script

COUNT = Script("return redis.call('INCR', KEYS[1])")


class FlushAfterLoad:
    """The lean client, with a SCRIPT FLUSH right after each of the first `flushes` loads."""

    def __init__(self, client: RespClient, flushes: int) -> None:
        self.client, self.flushes, self.loads = client, flushes, 0

    async def script_load(self, source: str):
        sha = await self.client.script_load(source)
        self.loads += 1
        if self.flushes:
            self.flushes -= 1
            await self.client.execute_command("SCRIPT", "FLUSH")
        return sha

    def __getattr__(self, name: str):
        return getattr(self.client, name)


def _run(flushes: int, calls: int):
    async def main():
        client = RespClient.from_url(settings.REDIS_URL)
        await client.execute_command("SCRIPT", "FLUSH")
        await client.execute_command("DEL", "reload:n")
        flaky = FlushAfterLoad(client, flushes)
        batcher = Batcher(flaky)
        results = await asyncio.gather(
            *(batcher.call(COUNT, ["reload:n"], []) for _ in range(calls)),
            return_exceptions=True,
        )
        count = await client.execute_command("GET", "reload:n")
        await client.aclose()
        return results, count, flaky.loads

    return asyncio.run(main())


@pytest.mark.parametrize("calls", [1, 5], ids=["alone", "pipelined"])
def test_a_flush_between_load_and_call_is_loaded_again(redis_client, calls):
    results, count, loads = _run(RELOADS - 1, calls)
    assert sorted(results) == list(range(1, calls + 1))  # each ran exactly once
    assert int(count) == calls
    assert loads >= RELOADS


def test_a_script_that_keeps_vanishing_is_an_error_not_a_loop(redis_client):
    results, count, loads = _run(100, 1)
    assert isinstance(results[0], NoScriptError)
    assert count is None  # it never ran
    assert loads == RELOADS


def test_a_retried_pipeline_of_one_keeps_the_loads_it_has_left(redis_client):
    """A pipeline whose retry shrinks to one call goes through `Script` alone: it gets the loads
    the batch has left, not a fresh `RELOADS` on top (which allowed 3 + 3)."""

    async def main():
        client = RespClient.from_url(settings.REDIS_URL)
        await client.execute_command("SCRIPT", "FLUSH")
        flaky = FlushAfterLoad(client, 100)
        future = asyncio.get_running_loop().create_future()
        await Batcher(flaky)._run([(COUNT, ["reload:n"], [], future)], reloads=1)
        await client.aclose()
        return future.exception(), flaky.loads

    error, loads = asyncio.run(main())
    assert isinstance(error, NoScriptError)
    assert loads == 1
