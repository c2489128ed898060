"""Test set-up shared by every test module.

* The test database is created and migrated as the **owner** role, then every test connects as
  the **app** role, so row-level security is exercised, not assumed. Transactional tests flush
  (TRUNCATE) as the owner, since the app role has no TRUNCATE.
* Settings come from `alephant.settings.test` (pyproject), set once at load: the fast password
  hasher and this run's own Redis logical database (`ALEPHANT_TEST_REDIS_DB`, default 15),
  flushed before each test that asks for `redis_client`.
"""

from __future__ import annotations

import dj_database_url
import pytest
from django.db import connection, transaction

from tests.cast import *  # noqa: F403
from tests.gateway.servers import Stack, stack_start, start_simulator, test_env


def _connect_as(url: str) -> None:
    from django.db import connections

    conn = connections["default"]
    parsed = dj_database_url.parse(url)
    conn.close()
    conn.settings_dict["USER"] = parsed["USER"]
    conn.settings_dict["PASSWORD"] = parsed["PASSWORD"]


def connect_as_owner() -> None:
    from django.conf import settings

    _connect_as(settings.DATABASE_OWNER_URL)


def connect_as_app() -> None:
    from django.conf import settings

    _connect_as(settings.DATABASE_APP_URL)


def _flush_statements() -> list[str]:
    """What `manage.py flush` runs (TRUNCATE of every table), computed once per session."""
    from django.core.management.color import no_style

    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    return connection.ops.sql_flush(no_style(), tables)


@pytest.fixture(scope="session")
def django_db_setup(request, django_test_environment, django_db_blocker):
    from django.test.testcases import TransactionTestCase
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        connect_as_owner()
        config = setup_databases(verbosity=0, interactive=False, keepdb=False)
        connect_as_app()

    with django_db_blocker.unblock():
        flush_sql = _flush_statements()
    original_teardown = TransactionTestCase._fixture_teardown

    def _flush_as_owner(self):
        # Django's teardown runs `manage.py flush`, which re-emits post_migrate after the
        # TRUNCATE: content types and permissions (unused here) and the app-role grants (which
        # TRUNCATE leaves intact) again, twice the TRUNCATE's own cost on every test.
        connect_as_owner()
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                for sql in flush_sql:
                    cursor.execute(sql)
        finally:
            connect_as_app()

    TransactionTestCase._fixture_teardown = _flush_as_owner
    yield
    TransactionTestCase._fixture_teardown = original_teardown
    with django_db_blocker.unblock():
        connect_as_owner()
        teardown_databases(config, verbosity=0)


@pytest.fixture(scope="module")
def module_transaction(django_db_setup, django_db_blocker):
    """One transaction around a whole module, rolled back at its end: rows a module-scoped
    fixture makes once stay for every test of the module, and each test's own `db` transaction
    nests inside as a savepoint (Django's `TestCase.setUpTestData`, for pytest). Request it
    before `db` (`pytest.mark.usefixtures` on the module) and only where no test is transactional."""
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
    try:
        yield
    finally:
        with django_db_blocker.unblock():
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture(scope="session")
def simulator():
    """The upstream simulator, one per session (`/_sim/reset` clears its counters)."""
    proc, url = start_simulator()
    yield url
    proc.kill()


@pytest.fixture(scope="session")
def gateway_stack(simulator, django_db_setup, django_db_blocker) -> Stack:
    """One real gateway process (uvicorn, `alephant.asgi`) for the whole session, on the test
    database and Redis db, beside the simulator. Each test's data is its own (flushed after it);
    the gateway re-reads snapshots after `SNAPSHOT_CACHE_TTL`."""
    with django_db_blocker.unblock():
        env = test_env()
    env["ALEPHANT_UPSTREAM_RETRIES"] = "1"
    stack = stack_start(env, simulator)
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def gateway_pair(gateway_stack) -> Stack:
    """`gateway_stack` plus a second gateway process, same environment: cross-process tests."""
    second = stack_start(gateway_stack.env, gateway_stack.sim_url)
    yield Stack(gateway_stack.sim_url, gateway_stack.gw_urls + second.gw_urls, gateway_stack.env)
    second.stop()


@pytest.fixture(scope="session", autouse=True)
def _fresh_throttle_counters():
    # Rate-limit counters are keyed by workspace/user id, and ids restart with each new test
    # database: drop the previous run's windows once, or they would throttle this run.
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter("alephant:rl:*"):
        client.delete(key)
    client.close()


@pytest.fixture
def redis_client():
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield client
    client.close()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Real-browser tests run last.

    pytest-playwright's sync API keeps an asyncio loop running in the main thread for the rest of
    the session; any later test calling `asyncio.run()` would then fail. The sort is stable, so
    pytest-django's own ordering is kept within each group.
    """
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
