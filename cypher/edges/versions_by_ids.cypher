// versions_by_ids: every version of each listed edge id (the caller picks the current one)
MATCH ()-[r:FACT]->()
WHERE r.ns = $ns AND r.edge_id IN $ids AND r.version IS NOT NULL
RETURN properties(r) AS v
