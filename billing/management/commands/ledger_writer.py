"""`python manage.py ledger_writer`: drain the usage stream into the ledger until stopped."""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand
from django.db import connections

from core.rediskeys import usage_streams
from gateway.ledger_writer import BATCH_SIZE, LedgerWriter


class Command(BaseCommand):
    help = "Write gateway usage events (Redis stream alephant:usage) into the usage ledger."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
        parser.add_argument(
            "--claim-idle-ms",
            type=int,
            default=30_000,
            help="reclaim entries another consumer left pending this long",
        )
        parser.add_argument("--consumer", default=None)
        parser.add_argument("--once", action="store_true", help="drain what is there and exit")

    def handle(self, *args, **options):
        # One writer per usage stream shard (one on a single Redis; `ALEPHANT_REDIS_SHARDS` on a
        # cluster, each a consumer group in its own slot), each in its own thread.
        writers = [
            LedgerWriter(
                batch_size=options["batch_size"],
                claim_idle_ms=options["claim_idle_ms"],
                consumer=options["consumer"],
                stream=stream,
                create_group=options["once"],  # the loop makes it, and waits for Redis
            )
            for stream in usage_streams()
        ]
        writer = writers[0]
        # Named in pg_stat_activity, so an operator (or a test) can find this writer's backend.
        options_ = connections["default"].settings_dict.setdefault("OPTIONS", {})
        options_["application_name"] = f"alephant-ledger-{writer.consumer}"[:63]
        if options["once"]:
            self.stdout.write(f"wrote {sum(w.drain() for w in writers)} usage events")
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        threads = [
            threading.Thread(target=w.run_forever, args=(stop,), name=w.stream, daemon=True)
            for w in writers[1:]
        ]
        for thread in threads:
            thread.start()
        writer.run_forever(stop)
        for thread in threads:
            thread.join()
