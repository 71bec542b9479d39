// current_by_src_relation: current versions of the given subjects in the given relations
MATCH ()-[r:FACT]->()
WHERE r.ns = $ns AND r.src IN $srcs
  AND r.tkey IS NOT NULL AND r.edge_id IS NOT NULL AND r.version IS NOT NULL
  AND r.sys_to = $open AND r.relation IN $relations
RETURN properties(r) AS v
