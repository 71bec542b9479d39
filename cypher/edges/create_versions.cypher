// create_versions: write new FACT versions, creating their Entity endpoints as needed
UNWIND $rows AS row
MERGE (a:Entity {ns: $ns, name: row.src})
MERGE (b:Entity {ns: $ns, name: row.dst})
CREATE (a)-[r:FACT]->(b)
SET r.ns = $ns, r.edge_id = row.edge_id, r.version = row.version,
    r.src = row.src, r.dst = row.dst, r.relation = row.relation,
    r.weight = row.weight, r.attributes = row.attributes,
    r.valid_from = row.valid_from, r.valid_to = row.valid_to,
    r.sys_from = row.sys_from, r.sys_to = row.sys_to,
    r.created_at = row.created_at, r.invalidated_by = row.invalidated_by,
    r.content_hash = row.content_hash, r.tkey = row.tkey
RETURN count(r) AS created
