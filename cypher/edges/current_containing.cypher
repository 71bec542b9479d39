// current_containing: current versions of the given subjects and relations filed under the given interval keys (kg.interval_index.current_keys of the times asked about); the caller keeps those overlapping its own ranges
MATCH ()-[r:FACT]->()
WHERE r.ns = $ns AND r.src IN $srcs AND r.tkey IN $keys AND r.sys_to = $open
  AND r.relation IN $relations
RETURN properties(r) AS v
