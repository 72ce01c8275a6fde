/*
 * Client.java: every kv_* function through pgJDBC, the way an application
 * calls them: plain parameters (setString, setBytes, setObject with a
 * String[] or a byte[][], setInt, setNull) and no casts.  Prints TAP.
 *
 *   JDBC_DATABASE_URL=jdbc:postgresql://host:port/db?user=u \
 *       java -cp 'libs/*' Client.java
 *
 * The database has the kvstore extension; the topic is created by the
 * first write.
 */
import java.io.StringReader;
import java.security.SecureRandom;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Types;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import org.postgresql.copy.CopyManager;
import org.postgresql.core.BaseConnection;

public class Client {
    interface Check {
        void run() throws Exception;
    }

    static int count = 0;
    static int failed = 0;

    /* Run one check and print its TAP line */
    static void check(String name, Check fn) {
        count++;
        try {
            fn.run();
            System.out.println("ok " + count + " - " + name);
        } catch (Throwable err) {
            failed++;
            System.out.println("not ok " + count + " - " + name);
            System.out.println(("" + err).replaceAll("(?m)^", "# "));
        }
    }

    static void expect(Object got, Object want) {
        if (!(got == null ? want == null : got.equals(want)))
            throw new AssertionError("got " + got + ", want " + want);
    }

    static String hex(byte[] b) {
        return b == null ? null : HexFormat.of().formatHex(b);
    }

    /* The rows of a query, columns joined by "=": bytea in hex, NULL as NULL */
    static List<String> rows(PreparedStatement st) throws SQLException {
        List<String> out = new ArrayList<>();
        try (ResultSet rs = st.executeQuery()) {
            int n = rs.getMetaData().getColumnCount();
            while (rs.next()) {
                List<String> cols = new ArrayList<>();
                for (int i = 1; i <= n; i++) {
                    String v = rs.getMetaData().getColumnType(i) == Types.BINARY
                        ? hex(rs.getBytes(i)) : rs.getString(i);
                    cols.add(v == null ? "NULL" : v);
                }
                out.add(String.join("=", cols));
            }
        }
        return out;
    }

    /* The SQLSTATE a statement fails with */
    static String sqlstate(PreparedStatement st) {
        try {
            st.execute();
        } catch (SQLException err) {
            return err.getSQLState();
        }
        return "no error";
    }

    static long first;

    public static void main(String[] args) throws Exception {
        Connection db = DriverManager.getConnection(System.getenv("JDBC_DATABASE_URL"));
        byte[] suffix = new byte[6];
        new SecureRandom().nextBytes(suffix);
        String topic = "clients_java_" + hex(suffix);

        // ==============================================================
        // text keys and values
        // ==============================================================
        check("kv_create_topic creates the topic once", () -> {
            PreparedStatement create = db.prepareStatement("SELECT kv_create_topic(?)");
            create.setString(1, topic);
            expect(rows(create), List.of("t"));
            expect(rows(create), List.of("f"));
        });

        check("kv_put with strings returns the offset", () -> {
            PreparedStatement put = db.prepareStatement("SELECT kv_put(?, ?, ?)");
            put.setString(1, topic);
            put.setString(2, "user:1");
            put.setString(3, "alice");
            try (ResultSet rs = put.executeQuery()) {
                rs.next();
                first = rs.getLong(1);
            }
            if (first < 0)
                throw new AssertionError("offset " + first);
        });

        check("kv_get reads the value back", () -> {
            PreparedStatement get = db.prepareStatement("SELECT kv_get(?, ?)");
            get.setString(1, topic);
            get.setString(2, "user:1");
            expect(rows(get), List.of("alice"));
        });

        check("kv_exists and kv_get of an absent key", () -> {
            PreparedStatement st = db.prepareStatement("SELECT kv_exists(?, ?), kv_exists(?, ?), kv_get(?, ?)");
            st.setString(1, topic);
            st.setString(2, "user:1");
            st.setString(3, topic);
            st.setString(4, "user:404");
            st.setString(5, topic);
            st.setString(6, "user:404");
            expect(rows(st), List.of("t=f=NULL"));
        });

        check("kv_put_many with two arrays of strings, a null deleting", () -> {
            PreparedStatement batch = db.prepareStatement("SELECT kv_put_many(?, ?, ?)");
            batch.setString(1, topic);
            batch.setObject(2, new String[] {"user:2", "user:3", "user:10", "user:3"});
            batch.setObject(3, new String[] {"bob", "carol", "dave", null});
            try (ResultSet rs = batch.executeQuery()) {
                rs.next();
                if (rs.getLong(1) <= first)
                    throw new AssertionError("offset " + rs.getLong(1) + " after " + first);
            }
        });

        check("kv_scan by prefix, in byte order", () -> {
            PreparedStatement scan = db.prepareStatement("SELECT key, value FROM kv_scan(?, ?)");
            scan.setString(1, topic);
            scan.setString(2, "user:");
            expect(rows(scan), List.of("user:1=alice", "user:10=dave", "user:2=bob"));
        });

        check("kv_scan with max_rows, and with the topic alone", () -> {
            PreparedStatement scan = db.prepareStatement("SELECT key FROM kv_scan(?, ?, ?)");
            scan.setString(1, topic);
            scan.setString(2, "user:");
            scan.setInt(3, 2);
            expect(rows(scan), List.of("user:1", "user:10"));
            PreparedStatement all = db.prepareStatement("SELECT count(*) FROM kv_scan(?)");
            all.setString(1, topic);
            expect(rows(all), List.of("3"));
        });

        check("kv_range with a null bound", () -> {
            PreparedStatement range = db.prepareStatement("SELECT key FROM kv_range(?, ?, ?, ?)");
            range.setString(1, topic);
            range.setString(2, "user:10");
            range.setNull(3, Types.VARCHAR);
            range.setNull(4, Types.INTEGER);
            expect(rows(range), List.of("user:10", "user:2"));
        });

        check("kv_delete removes the key", () -> {
            PreparedStatement del = db.prepareStatement("SELECT kv_delete(?, ?)");
            del.setString(1, topic);
            del.setString(2, "user:2");
            del.execute();
            PreparedStatement exists = db.prepareStatement("SELECT kv_exists(?, ?)");
            exists.setString(1, topic);
            exists.setString(2, "user:2");
            expect(rows(exists), List.of("f"));
        });

        // ==============================================================
        // binary keys and values: byte[], with 0x00 bytes
        // ==============================================================
        byte[] key = {0x00, 0x01, (byte) 0xff};
        byte[] value = {(byte) 0xde, (byte) 0xad, 0x00, (byte) 0xbe, (byte) 0xef};

        check("kv_put_bytea and kv_get_bytea round-trip a key with a 0x00 byte", () -> {
            PreparedStatement putBytes = db.prepareStatement("SELECT kv_put_bytea(?, ?, ?)");
            putBytes.setString(1, topic);
            putBytes.setBytes(2, key);
            putBytes.setBytes(3, value);
            putBytes.execute();
            PreparedStatement getBytes = db.prepareStatement("SELECT kv_get_bytea(?, ?)");
            getBytes.setString(1, topic);
            getBytes.setBytes(2, key);
            try (ResultSet rs = getBytes.executeQuery()) {
                rs.next();
                if (!Arrays.equals(rs.getBytes(1), value))
                    throw new AssertionError("got " + hex(rs.getBytes(1)));
            }
        });

        check("kv_exists_bytea: the key, not its prefix", () -> {
            PreparedStatement st = db.prepareStatement("SELECT kv_exists_bytea(?, ?), kv_exists_bytea(?, ?)");
            st.setString(1, topic);
            st.setBytes(2, key);
            st.setString(3, topic);
            st.setBytes(4, Arrays.copyOf(key, 2));
            expect(rows(st), List.of("t=f"));
        });

        check("kv_put_many_bytea with two arrays of byte[]", () -> {
            PreparedStatement batch = db.prepareStatement("SELECT kv_put_many_bytea(?, ?, ?)");
            batch.setString(1, topic);
            batch.setObject(2, new byte[][] {{0x00, 0x02}, {0x00, 0x03}});
            batch.setObject(3, new byte[][] {{0x02}, {}});
            batch.execute();
            PreparedStatement scan = db.prepareStatement("SELECT key, value FROM kv_scan_bytea(?, ?)");
            scan.setString(1, topic);
            scan.setBytes(2, new byte[] {0x00});
            expect(rows(scan), List.of("0001ff=dead00beef", "0002=02", "0003="));
        });

        check("kv_range_bytea and kv_delete_bytea", () -> {
            PreparedStatement range = db.prepareStatement("SELECT key FROM kv_range_bytea(?, ?, ?, ?)");
            range.setString(1, topic);
            range.setBytes(2, new byte[] {0x00, 0x02});
            range.setNull(3, Types.BINARY);
            range.setInt(4, 1);
            expect(rows(range), List.of("0002"));
            PreparedStatement del = db.prepareStatement("SELECT kv_delete_bytea(?, ?)");
            del.setString(1, topic);
            del.setBytes(2, key);
            del.execute();
            PreparedStatement get = db.prepareStatement("SELECT kv_get_bytea(?, ?)");
            get.setString(1, topic);
            get.setBytes(2, key);
            expect(rows(get), List.of("NULL"));
        });

        check("kv_sync returns the end offset", () -> {
            PreparedStatement sync = db.prepareStatement("SELECT kv_sync(?)");
            sync.setString(1, topic);
            try (ResultSet rs = sync.executeQuery()) {
                rs.next();
                if (rs.getLong(1) <= first)
                    throw new AssertionError("offset " + rs.getLong(1) + " after " + first);
            }
        });

        check("kv_checksum: the applied offset and the key count", () -> {
            PreparedStatement checksum = db.prepareStatement("SELECT applied_offset, keys FROM kv_checksum(?)");
            checksum.setString(1, topic);
            try (ResultSet rs = checksum.executeQuery()) {
                rs.next();
                if (rs.getLong(1) <= first)
                    throw new AssertionError("applied offset " + rs.getLong(1) + " after " + first);
                expect(rs.getLong(2), 4L);
            }
        });

        // ==============================================================
        // errors: the SQLSTATE reaches the caller as getSQLState()
        // ==============================================================
        check("a null key fails with 22004", () -> {
            PreparedStatement put = db.prepareStatement("SELECT kv_put(?, ?, ?)");
            put.setString(1, topic);
            put.setNull(2, Types.VARCHAR);
            put.setString(3, "v");
            expect(sqlstate(put), "22004");
        });

        check("an empty key fails with 22023", () -> {
            PreparedStatement get = db.prepareStatement("SELECT kv_get_bytea(?, ?)");
            get.setString(1, topic);
            get.setBytes(2, new byte[0]);
            expect(sqlstate(get), "22023");
        });

        check("a binary value read as text fails with 22021", () -> {
            PreparedStatement put = db.prepareStatement("SELECT kv_put_bytea(?, ?, ?)");
            put.setString(1, topic);
            put.setBytes(2, "bin".getBytes());
            put.setBytes(3, new byte[] {(byte) 0xff});
            put.execute();
            PreparedStatement get = db.prepareStatement("SELECT kv_get(?, ?)");
            get.setString(1, topic);
            get.setString(2, "bin");
            expect(sqlstate(get), "22021");
        });

        check("an unknown topic fails with 42704", () -> {
            PreparedStatement get = db.prepareStatement("SELECT kv_get(?, ?)");
            get.setString(1, topic + "_absent");
            get.setString(2, "k");
            expect(sqlstate(get), "42704");
        });

        check("an invalid topic name fails with 42602", () -> {
            PreparedStatement get = db.prepareStatement("SELECT kv_get(?, ?)");
            get.setString(1, "no spaces");
            get.setString(2, "k");
            expect(sqlstate(get), "42602");
        });

        // ==============================================================
        // the foreign table: INSERT ... VALUES (?, ?), WHERE key = ?,
        // key = ANY(?) with an array, COPY through CopyManager
        // ==============================================================
        String table = topic + "_table";

        check("a foreign table over a topic of its own", () -> {
            try (Statement st = db.createStatement()) {
                st.execute("CREATE SERVER IF NOT EXISTS clients_kv FOREIGN DATA WRAPPER kvstore");
                st.execute("CREATE FOREIGN TABLE " + table + " (key text COLLATE \"C\", value text) "
                    + "SERVER clients_kv OPTIONS (topic '" + table + "')");
            }
        });

        check("INSERT ... VALUES (?, ?) with strings", () -> {
            PreparedStatement insert = db.prepareStatement(
                "INSERT INTO " + table + " (key, value) VALUES (?, ?), (?, ?)");
            insert.setString(1, "user:1");
            insert.setString(2, "alice");
            insert.setString(3, "user:2");
            insert.setString(4, "bob");
            expect(insert.executeUpdate(), 2);
        });

        check("WHERE key = ?", () -> {
            PreparedStatement get = db.prepareStatement("SELECT value FROM " + table + " WHERE key = ?");
            get.setString(1, "user:2");
            expect(rows(get), List.of("bob"));
        });

        check("WHERE key = ANY(?) with an array", () -> {
            PreparedStatement get = db.prepareStatement(
                "SELECT key, value FROM " + table + " WHERE key = ANY(?)");
            get.setObject(1, new String[] {"user:2", "user:404", "user:1"});
            expect(rows(get), List.of("user:1=alice", "user:2=bob"));
        });

        check("COPY through CopyManager", () -> {
            StringBuilder data = new StringBuilder();
            for (int i = 0; i < 100; i++)
                data.append(String.format("copy:%03d\tv%d\n", i, i));
            long n = new CopyManager(db.unwrap(BaseConnection.class)).copyIn(
                "COPY " + table + " (key, value) FROM STDIN", new StringReader(data.toString()));
            expect(n, 100L);
            PreparedStatement get = db.prepareStatement(
                "SELECT count(*), max(key) FROM " + table + " WHERE key LIKE ?");
            get.setString(1, "copy:%");
            expect(rows(get), List.of("100=copy:099"));
        });

        check("a NULL key fails with 23502 and writes nothing of the statement", () -> {
            PreparedStatement insert = db.prepareStatement(
                "INSERT INTO " + table + " VALUES (?, ?), (?, ?)");
            insert.setString(1, "ok");
            insert.setString(2, "1");
            insert.setNull(3, Types.VARCHAR);
            insert.setString(4, "2");
            expect(sqlstate(insert), "23502");
            PreparedStatement get = db.prepareStatement("SELECT count(*) FROM " + table + " WHERE key = ?");
            get.setString(1, "ok");
            expect(rows(get), List.of("0"));
            try (Statement st = db.createStatement()) {
                st.execute("DROP FOREIGN TABLE " + table);
            }
        });


        db.close();
        System.out.println("1.." + count);
        System.exit(failed > 0 ? 1 : 0);
    }
}
