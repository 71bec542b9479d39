// current_by_src_relation: current versions of the given subjects in the given relations; the index hint keeps Neo4j on the subject index (by statistics it chose the (ns, edge_id, version) one and read the whole namespace; ArcadeDB ignores the hint)
MATCH ()-[r:FACT]->()
USING INDEX r:FACT(ns, src, tkey, edge_id, version)
WHERE r.ns = $ns AND r.src IN $srcs
  AND r.tkey IS NOT NULL AND r.edge_id IS NOT NULL AND r.version IS NOT NULL
  AND r.sys_to = $open AND r.relation IN $relations
RETURN properties(r) AS v
