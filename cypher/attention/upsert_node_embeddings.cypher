// upsert_node_embeddings: create or update Entity nodes and store their attention embedding
UNWIND $rows AS row
MERGE (n:Entity {ns: $ns, name: row.name})
SET n.embedding = row.embedding
RETURN count(n) AS upserted
