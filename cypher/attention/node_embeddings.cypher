// node_embeddings: the stored embeddings of the named entities (attention node vectors); an IN list, not UNWIND + MATCH map, which ArcadeDB resolves wrongly for a name like "$ns"
MATCH (n:Entity)
WHERE n.ns = $ns AND n.name IN $names AND n.embedding IS NOT NULL
RETURN n.name AS name, n.embedding AS embedding
