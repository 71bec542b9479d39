// close_versions: end the system interval of the current versions of the listed ids; $ends maps each id to [sys_to, tkey] (a map, not UNWIND rows: ArcadeDB uses the edge_id index only for an IN list)
MATCH ()-[r:FACT]->()
WHERE r.ns = $ns AND r.edge_id IN $ids AND r.version IS NOT NULL AND r.sys_to = $open
WITH r, $ends[r.edge_id] AS end
SET r.sys_to = end[0], r.tkey = end[1]
RETURN count(r) AS closed
