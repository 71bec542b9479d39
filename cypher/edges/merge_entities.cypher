// merge_entities: make sure an Entity node exists for every name; returns their element ids
UNWIND $names AS name
MERGE (n:Entity {ns: $ns, name: name})
RETURN name, elementId(n) AS node
