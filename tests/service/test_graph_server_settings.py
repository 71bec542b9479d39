"""Settings `kg up` gives the graph server it starts, read back from the running server."""

from __future__ import annotations

from kg.graph import Graph


def test_the_neo4j_kg_up_starts_keeps_at_most_a_gigabyte_of_transaction_logs(neo4j_settings):
    """Neo4j's default retention (2 days) kept 11 GB of logs after a 10M-edge load."""
    from service.servers import TX_LOG_RETENTION

    with Graph(neo4j_settings) as graph, graph.driver.session(database="system") as session:
        value = session.run("SHOW SETTINGS YIELD name, value WHERE name = 'db.tx_log.rotation.retention_policy' "
                            "RETURN value").single(strict=True)["value"]
    assert value == TX_LOG_RETENTION == "1G size"
