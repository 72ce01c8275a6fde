"""Every kv_* function through psycopg 3, the way an application calls
them: plain parameters (str, lists of str, bytes, lists of bytes, int,
None) and no casts.  Prints TAP.

    DATABASE_URL=postgresql://user@host:port/db python client.py

The database has the kvstore extension; the topic is created by the first
write.
"""
import os
import secrets
import sys
import traceback

import psycopg

count = 0
failed = 0


def check(name):
    """Run the decorated function as one check and print its TAP line."""
    def run(fn):
        global count, failed
        count += 1
        try:
            fn()
            print(f"ok {count} - {name}")
        except Exception:
            failed += 1
            print(f"not ok {count} - {name}")
            print("".join("# " + line for line in traceback.format_exc().splitlines(True)))
        return fn
    return run


def sqlstate(db, query, params):
    """The SQLSTATE a query fails with."""
    try:
        db.execute(query, params)
    except psycopg.Error as err:
        return err.sqlstate
    return "no error"


db = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
topic = "clients_python_" + secrets.token_hex(6)
first = None

# ======================================================================
# text keys and values
# ======================================================================


@check("kv_create_topic creates the topic once")
def _():
    (created,) = db.execute("SELECT kv_create_topic(%s)", (topic,)).fetchone()
    (again,) = db.execute("SELECT kv_create_topic(%s)", (topic,)).fetchone()
    assert (created, again) == (True, False), (created, again)


@check("kv_put with strings returns the offset")
def _():
    global first
    (first,) = db.execute("SELECT kv_put(%s, %s, %s)", (topic, "user:1", "alice")).fetchone()
    assert first >= 0


@check("kv_get reads the value back")
def _():
    (value,) = db.execute("SELECT kv_get(%s, %s)", (topic, "user:1")).fetchone()
    assert value == "alice", value


@check("kv_exists and kv_get of an absent key")
def _():
    row = db.execute("SELECT kv_exists(%(t)s, %(k)s), kv_exists(%(t)s, %(absent)s), kv_get(%(t)s, %(absent)s)",
                     {"t": topic, "k": "user:1", "absent": "user:404"}).fetchone()
    assert row == (True, False, None), row


@check("kv_put_many with two lists of strings, a None deleting")
def _():
    (offset,) = db.execute("SELECT kv_put_many(%s, %s, %s)",
                           (topic, ["user:2", "user:3", "user:10", "user:3"],
                            ["bob", "carol", "dave", None])).fetchone()
    assert offset > first, offset


@check("kv_scan by prefix, in byte order")
def _():
    rows = db.execute("SELECT key, value FROM kv_scan(%s, %s)", (topic, "user:")).fetchall()
    assert rows == [("user:1", "alice"), ("user:10", "dave"), ("user:2", "bob")], rows


@check("kv_scan with max_rows, and with the topic alone")
def _():
    rows = db.execute("SELECT key FROM kv_scan(%s, %s, %s)", (topic, "user:", 2)).fetchall()
    assert rows == [("user:1",), ("user:10",)], rows
    (n,) = db.execute("SELECT count(*) FROM kv_scan(%s)", (topic,)).fetchone()
    assert n == 3, n


@check("kv_range with a null bound")
def _():
    rows = db.execute("SELECT key FROM kv_range(%s, %s, %s, %s)", (topic, "user:10", None, None)).fetchall()
    assert rows == [("user:10",), ("user:2",)], rows


@check("kv_delete removes the key")
def _():
    db.execute("SELECT kv_delete(%s, %s)", (topic, "user:2"))
    (present,) = db.execute("SELECT kv_exists(%s, %s)", (topic, "user:2")).fetchone()
    assert present is False, present


# ======================================================================
# binary keys and values: bytes, with 0x00 bytes
# ======================================================================
key = b"\x00\x01\xff"
value = b"\xde\xad\x00\xbe\xef"


@check("kv_put_bytea and kv_get_bytea round-trip a key with a 0x00 byte")
def _():
    db.execute("SELECT kv_put_bytea(%s, %s, %s)", (topic, key, value))
    (got,) = db.execute("SELECT kv_get_bytea(%s, %s)", (topic, key)).fetchone()
    assert got == value, got


@check("kv_exists_bytea: the key, not its prefix")
def _():
    row = db.execute("SELECT kv_exists_bytea(%s, %s), kv_exists_bytea(%s, %s)",
                     (topic, key, topic, key[:2])).fetchone()
    assert row == (True, False), row


@check("kv_put_many_bytea with two lists of bytes")
def _():
    db.execute("SELECT kv_put_many_bytea(%s, %s, %s)",
               (topic, [b"\x00\x02", b"\x00\x03"], [b"\x02", b""]))
    rows = db.execute("SELECT key, value FROM kv_scan_bytea(%s, %s)", (topic, b"\x00")).fetchall()
    assert rows == [(key, value), (b"\x00\x02", b"\x02"), (b"\x00\x03", b"")], rows


@check("kv_range_bytea and kv_delete_bytea")
def _():
    rows = db.execute("SELECT key FROM kv_range_bytea(%s, %s, %s, %s)",
                      (topic, b"\x00\x02", None, 1)).fetchall()
    assert rows == [(b"\x00\x02",)], rows
    db.execute("SELECT kv_delete_bytea(%s, %s)", (topic, key))
    (got,) = db.execute("SELECT kv_get_bytea(%s, %s)", (topic, key)).fetchone()
    assert got is None, got


@check("kv_sync returns the end offset")
def _():
    (offset,) = db.execute("SELECT kv_sync(%s)", (topic,)).fetchone()
    assert offset > first, offset


@check("kv_checksum: the applied offset and the key count")
def _():
    (applied, keys) = db.execute("SELECT applied_offset, keys FROM kv_checksum(%s)", (topic,)).fetchone()
    assert applied > first, applied
    assert keys == 4, keys


# ======================================================================
# errors: the SQLSTATE reaches the caller as err.sqlstate
# ======================================================================


@check("a null key fails with 22004")
def _():
    assert sqlstate(db, "SELECT kv_put(%s, %s, %s)", (topic, None, "v")) == "22004"


@check("an empty key fails with 22023")
def _():
    assert sqlstate(db, "SELECT kv_get_bytea(%s, %s)", (topic, b"")) == "22023"


@check("a binary value read as text fails with 22021")
def _():
    db.execute("SELECT kv_put_bytea(%s, %s, %s)", (topic, b"bin", b"\xff"))
    assert sqlstate(db, "SELECT kv_get(%s, %s)", (topic, "bin")) == "22021"


@check("an unknown topic fails with 42704")
def _():
    assert sqlstate(db, "SELECT kv_get(%s, %s)", (topic + "_absent", "k")) == "42704"


@check("an invalid topic name fails with 42602")
def _():
    assert sqlstate(db, "SELECT kv_get(%s, %s)", ("no spaces", "k")) == "42602"


# ======================================================================
# the foreign table: INSERT ... VALUES (%s, %s), WHERE key = %s,
# key = ANY(%s) with a list, COPY through cursor.copy()
# ======================================================================
table = topic + "_table"


@check("a foreign table over a topic of its own")
def _():
    db.execute("CREATE SERVER IF NOT EXISTS clients_kv FOREIGN DATA WRAPPER kvstore")
    db.execute(f"CREATE FOREIGN TABLE {table} (key text COLLATE \"C\", value text) "
               f"SERVER clients_kv OPTIONS (topic '{table}')")


@check("INSERT ... VALUES (%s, %s) with strings")
def _():
    cur = db.execute(f"INSERT INTO {table} (key, value) VALUES (%s, %s), (%s, %s)",
                     ("user:1", "alice", "user:2", "bob"))
    assert cur.rowcount == 2, cur.rowcount


@check("WHERE key = %s")
def _():
    (value,) = db.execute(f"SELECT value FROM {table} WHERE key = %s", ("user:2",)).fetchone()
    assert value == "bob", value


@check("WHERE key = ANY(%s) with a list")
def _():
    rows = db.execute(f"SELECT key, value FROM {table} WHERE key = ANY(%s)",
                      (["user:2", "user:404", "user:1"],)).fetchall()
    assert rows == [("user:1", "alice"), ("user:2", "bob")], rows


@check("COPY FROM STDIN through cursor.copy()")
def _():
    with db.cursor() as cur:
        with cur.copy(f"COPY {table} (key, value) FROM STDIN") as copy:
            for i in range(100):
                copy.write_row((f"copy:{i:03}", f"v{i}"))
    (n, last) = db.execute(f"SELECT count(*), max(key) FROM {table} WHERE key LIKE %s",
                           ("copy:%",)).fetchone()
    assert (n, last) == (100, "copy:099"), (n, last)


@check("a NULL key fails with 23502 and writes nothing of the statement")
def _():
    assert sqlstate(db, f"INSERT INTO {table} VALUES (%s, %s), (%s, %s)", ("ok", "1", None, "2")) == "23502"
    (n,) = db.execute(f"SELECT count(*) FROM {table} WHERE key = %s", ("ok",)).fetchone()
    assert n == 0, n
    db.execute(f"DROP FOREIGN TABLE {table}")


db.close()
print(f"1..{count}")
sys.exit(1 if failed else 0)
