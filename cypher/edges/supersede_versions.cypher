// supersede_versions: end the system interval of the current version of each listed id and create its new versions between the same endpoints, in one pass; $changes maps each id to [sys_to, tkey, rows] with rows as in create_versions (kg.temporal.ROW_FIELDS order, at least one per id); the endpoints come from the old version, so no Entity is looked up (a map, not UNWIND rows: ArcadeDB uses the edge_id index only for an IN list)
MATCH ()-[old:FACT]->()
WHERE old.ns = $ns AND old.edge_id IN $ids AND old.version IS NOT NULL AND old.sys_to = $open
WITH old, $changes[old.edge_id] AS change
SET old.sys_to = change[0], old.tkey = change[1]
WITH old, startNode(old) AS a, endNode(old) AS b, change[2] AS versions
UNWIND versions AS row
CREATE (a)-[r:FACT {ns: $ns, edge_id: row[0], version: row[1],
                    src: row[2], dst: row[3], relation: row[4],
                    weight: row[5], attributes: row[6],
                    valid_from: row[7], valid_to: row[8],
                    sys_from: row[9], sys_to: row[10],
                    created_at: row[11], invalidated_by: row[12],
                    content_hash: row[13], tkey: row[14]}]->(b)
RETURN count(DISTINCT old.edge_id) AS closed, count(r) AS created
