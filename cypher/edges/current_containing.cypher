// current_containing: current versions of one subject in one relation filed under the given interval keys (kg.interval_index.current_keys of each time) that overlap [$earliest, $latest]
MATCH ()-[r:FACT]->()
WHERE r.ns = $ns AND r.src = $src AND r.tkey IN $keys AND r.sys_to = $open
  AND r.relation = $relation AND r.valid_from <= $latest AND $earliest < r.valid_to
RETURN properties(r) AS v
