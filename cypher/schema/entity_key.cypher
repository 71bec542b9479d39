// entity_key: one Entity node per (namespace, name)
CREATE CONSTRAINT entity_key IF NOT EXISTS FOR (n:Entity) REQUIRE (n.ns, n.name) IS UNIQUE
