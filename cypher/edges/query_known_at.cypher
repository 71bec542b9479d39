// query_known_at: edges of a subject valid at $t as the service believed at $known_at
MATCH ()-[r:FACT]->()
WHERE r.ns = $ns AND r.src = $src AND r.tkey IN $keys AND r.edge_id IS NOT NULL AND r.version IS NOT NULL
  AND r.sys_from <= $known_at AND $known_at < r.sys_to
  AND r.valid_from <= $t AND $t < r.valid_to
RETURN properties(r) AS v
