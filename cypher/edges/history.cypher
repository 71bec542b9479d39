// history: every version of one edge, oldest first
MATCH ()-[r:FACT]->()
WHERE r.ns = $ns AND r.edge_id = $id AND r.version IS NOT NULL
RETURN properties(r) AS v
ORDER BY r.version
