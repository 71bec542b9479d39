// node_embeddings: the stored embeddings of dimension $dim of the named entities (attention node vectors; others are skipped by attention, so they are not read); the name is compared in WHERE, not in a MATCH map (ArcadeDB matches a map value like "$ns" from an UNWIND row as that parameter) nor with IN $names (ArcadeDB scans for that: ~50 ms against ~3 ms among 280k entities)
UNWIND $names AS name
MATCH (n:Entity)
WHERE n.ns = $ns AND n.name = name AND n.embedding IS NOT NULL AND size(n.embedding) = $dim
RETURN n.name AS name, n.embedding AS embedding
