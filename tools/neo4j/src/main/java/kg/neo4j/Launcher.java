package kg.neo4j;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.kernel.internal.Version;

/**
 * Starts one persistent Neo4j Community server for `kg up`.
 *
 * <p>Usage: {@code Launcher <home> <neo4j.conf>}. Every setting (Bolt address, memory, auth,
 * usage reporting) comes from the properties file that `kg up` writes; the password of user
 * {@code neo4j} comes from the environment variable KG_NEO4J_PASSWORD, so it never shows on a
 * command line. It is set on every start (a no-op when unchanged). When the default database
 * answers, one line {@code kg-neo4j ready <version>} goes to stdout; SIGTERM shuts down cleanly.
 */
public final class Launcher {
    private Launcher() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: Launcher <home> <neo4j.conf>");
            System.exit(2);
        }
        Path home = Path.of(args[0]);
        Path conf = Path.of(args[1]);
        if (!Files.isReadable(conf)) {
            System.err.println("kg-neo4j: cannot read " + conf);
            System.exit(2);
        }
        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(home)
                .loadPropertiesFromFile(conf)
                .build();
        Runtime.getRuntime().addShutdownHook(new Thread(dbms::shutdown, "kg-neo4j-shutdown"));

        String password = System.getenv("KG_NEO4J_PASSWORD");
        if (password != null && !password.isEmpty()) {
            setPassword(dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME), password);
        }
        GraphDatabaseService db = dbms.database(GraphDatabaseSettings.DEFAULT_DATABASE_NAME);
        db.executeTransactionally("RETURN 1");
        System.out.println("kg-neo4j ready " + Version.getNeo4jVersion());
        System.out.flush();
        new CountDownLatch(1).await();
    }

    /** Sets the password of user neo4j; Neo4j refuses an unchanged one, which is fine here. */
    private static void setPassword(GraphDatabaseService system, String password) {
        try {
            system.executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $pw CHANGE NOT REQUIRED", Map.of("pw", password));
        } catch (RuntimeException e) {
            String message = String.valueOf(e.getMessage());
            if (!message.contains("Old password and new password cannot be the same")) {
                throw e;
            }
        }
    }
}
