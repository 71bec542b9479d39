// ping: the cheapest round trip that proves the database answers
RETURN 1 AS ok
