// close_versions: end the system interval of the current versions of the listed ids
MATCH ()-[r:FACT]->()
WHERE r.ns = $ns AND r.edge_id IN $ids AND r.sys_to = $open
SET r.sys_to = $sys_to, r.tkey = $tkey
RETURN count(r) AS closed
