// create_versions: write new FACT versions, creating their Entity endpoints as needed; properties go in the CREATE pattern (ArcadeDB writes a relationship with one SET per property about twice as slowly)
UNWIND $rows AS row
MERGE (a:Entity {ns: $ns, name: row.src})
MERGE (b:Entity {ns: $ns, name: row.dst})
CREATE (a)-[r:FACT {ns: $ns, edge_id: row.edge_id, version: row.version,
                    src: row.src, dst: row.dst, relation: row.relation,
                    weight: row.weight, attributes: row.attributes,
                    valid_from: row.valid_from, valid_to: row.valid_to,
                    sys_from: row.sys_from, sys_to: row.sys_to,
                    created_at: row.created_at, invalidated_by: row.invalidated_by,
                    content_hash: row.content_hash, tkey: row.tkey}]->(b)
RETURN count(r) AS created
