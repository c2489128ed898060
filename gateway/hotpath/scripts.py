"""The enforcement Lua scripts (`lua/`), loaded once per Redis, and the batcher that lets
concurrent calls share one round trip."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any, TypeAlias

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from gateway.hotpath.resp import RespClient

# redis-py's asyncio client, or the request path's lean `RespClient` (same calls, same errors)
AnyRedis: TypeAlias = "aioredis.Redis | RespClient"


# Loads tried before a NOSCRIPT is an error: a flush (SCRIPT FLUSH, a restart, a failover to a
# replica without the scripts) can land between a load and the call that follows it.
RELOADS = 3


def _load_script(name: str) -> str:
    return (Path(__file__).with_name("lua") / name).read_text()


class Script:
    """EVALSHA with the script loaded once per Redis; reloaded on NOSCRIPT (Redis restarted)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 - Redis' script id

    async def __call__(
        self, client: AnyRedis, keys: list[str], args: list, reloads: int = RELOADS
    ) -> Any:
        for _ in range(reloads):
            try:
                return await client.evalsha(self.sha, len(keys), *keys, *args)
            except NoScriptError:  # the script never ran: loading it and sending again is safe
                await client.script_load(self.source)
        return await client.evalsha(self.sha, len(keys), *keys, *args)


def _resolve(future: asyncio.Future, result: Any) -> None:
    if not future.done():  # the caller may have been cancelled (client went away)
        future.set_result(result)


def _fail(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class Batcher:
    """Concurrent script calls share one round trip: while a batch is in flight, new calls
    queue and go together in the next pipeline (non-transactional: each script is atomic on its
    own). An idle caller is sent at once, so batching adds no latency; under load it saves the
    per-command client CPU (one send/recv for many), like the usage queue does for events."""

    def __init__(self, client: AnyRedis) -> None:
        self.client = client
        self.pending: list[tuple[Script, list[str], list, asyncio.Future]] = []
        self.flushing = False
        self._task: asyncio.Future | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def call(self, script: Script, keys: list[str], args: list) -> Any:
        loop = asyncio.get_running_loop()
        if self.flushing and (
            self._loop is not loop or (self._task is not None and self._task.done())
        ):
            # A flush that died with its event loop must not leave the batcher stuck.
            self.flushing, self.pending, self._task = False, [], None
        if not self.flushing:
            # Nothing in flight: this caller makes the round trip itself (no task, no future).
            self.flushing, self._loop, self._task = True, loop, None
            try:
                return await script(self.client, keys, args)
            finally:
                if self.pending:
                    self._task = loop.create_task(self._flush())
                else:
                    self.flushing = False
        future = loop.create_future()
        self.pending.append((script, keys, args, future))
        return await future

    async def _flush(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                await self._run(batch, reloads=RELOADS)
        finally:
            self.flushing = False

    async def _run(self, batch: list, *, reloads: int) -> None:
        if len(batch) == 1:
            script, keys, args, future = batch[0]
            try:
                # the loads left to this batch, not a fresh RELOADS (no 3 + 3 stacking)
                _resolve(future, await script(self.client, keys, args, reloads))
            except BaseException as exc:
                _fail(future, exc)
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for script, keys, args, _future in batch:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            results = await pipe.execute(raise_on_error=False)
        except BaseException as exc:
            for *_rest, future in batch:
                _fail(future, exc)
            return
        retry = []
        for item, result in zip(batch, results, strict=True):
            future = item[3]
            if isinstance(result, NoScriptError) and reloads > 0:
                retry.append(item)  # the script never ran: safe to send again
            elif isinstance(result, BaseException):
                _fail(future, result)
            else:
                _resolve(future, result)
        if retry:
            try:
                for script in {id(item[0]): item[0] for item in retry}.values():
                    await self.client.script_load(script.source)
            except BaseException as exc:
                for *_rest, future in retry:
                    _fail(future, exc)
                return
            await self._run(retry, reloads=reloads - 1)


ADMIT = Script(_load_script("admit.lua"))
SETTLE = Script(_load_script("settle.lua"))
INIT = Script(_load_script("init.lua"))
