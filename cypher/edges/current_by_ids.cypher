// current_by_ids: the current (latest) version of each listed edge id
MATCH ()-[r:FACT]->()
WHERE r.ns = $ns AND r.edge_id IN $ids AND r.sys_to = $open
RETURN properties(r) AS v
