// node_embeddings: the stored embeddings of the named entities (attention node vectors)
UNWIND $names AS name
MATCH (n:Entity {ns: $ns, name: name})
WHERE n.embedding IS NOT NULL
RETURN n.name AS name, n.embedding AS embedding
