// merge_entities: make sure an Entity node exists for every name
UNWIND $names AS name
MERGE (n:Entity {ns: $ns, name: name})
