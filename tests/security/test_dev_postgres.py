"""The dev Postgres asks every role for its password; only the cluster's own OS account is
superuser (peer). Checked on the rules `make services` writes (also to an existing cluster,
then reloaded): a real throwaway cluster was verified by hand (README "Services")."""

from __future__ import annotations

from devtools import services


def _rules() -> list[list[str]]:
    return [line.split() for line in services._PG_HBA.splitlines() if line and line[0] != "#"]


def test_no_rule_trusts_a_connection():
    rules = _rules()
    assert rules and all("trust" not in rule for rule in rules)


def test_tcp_and_socket_logins_need_a_scram_password_except_the_cluster_owner():
    for rule in _rules():
        if rule[0] == "local" and rule[2] == "postgres":
            assert rule[3:] == ["peer", "map=alephant"]
        else:
            assert rule[-1] == "scram-sha-256", rule
    assert {rule[3] for rule in _rules() if rule[0] == "host"} == {"127.0.0.1/32", "::1/128"}
