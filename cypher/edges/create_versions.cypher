// create_versions: write new FACT versions between Entity nodes given by element id
UNWIND $rows AS row
MATCH (a:Entity) WHERE elementId(a) = row.a
MATCH (b:Entity) WHERE elementId(b) = row.b
CREATE (a)-[r:FACT]->(b)
SET r.ns = $ns, r.edge_id = row.edge_id, r.version = row.version,
    r.src = row.src, r.dst = row.dst, r.relation = row.relation,
    r.weight = row.weight, r.attributes = row.attributes,
    r.valid_from = row.valid_from, r.valid_to = row.valid_to,
    r.sys_from = row.sys_from, r.sys_to = row.sys_to,
    r.created_at = row.created_at, r.invalidated_by = row.invalidated_by,
    r.content_hash = row.content_hash, r.vfork = row.vfork, r.sfork = row.sfork
RETURN count(r) AS created
