// create_versions: write new FACT versions, creating their Entity endpoints as needed; each row is a list in kg.temporal.ROW_FIELDS order, and properties go in the CREATE pattern (ArcadeDB writes a relationship with one SET per property about twice as slowly)
UNWIND $rows AS row
MERGE (a:Entity {ns: $ns, name: row[2]})
MERGE (b:Entity {ns: $ns, name: row[3]})
CREATE (a)-[r:FACT {ns: $ns, edge_id: row[0], version: row[1],
                    src: row[2], dst: row[3], relation: row[4],
                    weight: row[5], attributes: row[6],
                    valid_from: row[7], valid_to: row[8],
                    sys_from: row[9], sys_to: row[10],
                    created_at: row[11], invalidated_by: row[12],
                    content_hash: row[13], tkey: row[14]}]->(b)
RETURN count(r) AS created
