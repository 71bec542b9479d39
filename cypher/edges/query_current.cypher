// query_current: edges of a subject whose latest version is valid at $t
MATCH ()-[r:FACT]->()
WHERE r.ns = $ns AND r.src = $src AND r.tkey IN $keys
  AND r.sys_to = $open AND r.valid_from <= $t AND $t < r.valid_to
RETURN properties(r) AS v
