"""Every kv_* function through asyncpg, the way an application calls them:
plain parameters (str, lists of str, bytes, lists of bytes, int, None)
and no casts.  asyncpg prepares each statement and encodes the parameters
with the types the server inferred, so each must have exactly one
reading.  Prints TAP.

    DATABASE_URL=postgresql://user@host:port/db python client_asyncpg.py

The database has the kvstore extension; the topic is created by the first
write.
"""
import asyncio
import os
import secrets
import sys
import traceback

import asyncpg

count = 0
failed = 0


async def check(name, coro):
    """Await one check and print its TAP line."""
    global count, failed
    count += 1
    try:
        await coro
        print(f"ok {count} - {name}")
    except Exception:
        failed += 1
        print(f"not ok {count} - {name}")
        print("".join("# " + line for line in traceback.format_exc().splitlines(True)))


async def sqlstate(db, query, *args):
    """The SQLSTATE a query fails with."""
    try:
        await db.execute(query, *args)
    except asyncpg.PostgresError as err:
        return err.sqlstate
    return "no error"


async def main():
    db = await asyncpg.connect(os.environ["DATABASE_URL"])
    topic = "clients_asyncpg_" + secrets.token_hex(6)
    first = None
    key = b"\x00\x01\xff"
    value = b"\xde\xad\x00\xbe\xef"

    # ==================================================================
    # text keys and values
    # ==================================================================
    async def create_topic():
        assert await db.fetchval("SELECT kv_create_topic($1)", topic) is True
        assert await db.fetchval("SELECT kv_create_topic($1)", topic) is False

    async def put():
        nonlocal first
        first = await db.fetchval("SELECT kv_put($1, $2, $3)", topic, "user:1", "alice")
        assert first >= 0, first

    async def get():
        assert await db.fetchval("SELECT kv_get($1, $2)", topic, "user:1") == "alice"

    async def exists():
        row = await db.fetchrow("SELECT kv_exists($1, $2), kv_exists($1, $3), kv_get($1, $3)",
                                topic, "user:1", "user:404")
        assert tuple(row) == (True, False, None), row

    async def batch():
        offset = await db.fetchval("SELECT kv_put_many($1, $2, $3)", topic,
                                   ["user:2", "user:3", "user:10", "user:3"],
                                   ["bob", "carol", "dave", None])
        assert offset > first, offset

    async def scan():
        rows = await db.fetch("SELECT key, value FROM kv_scan($1, $2)", topic, "user:")
        assert [tuple(r) for r in rows] == [("user:1", "alice"), ("user:10", "dave"), ("user:2", "bob")], rows

    async def scan_limits():
        rows = await db.fetch("SELECT key FROM kv_scan($1, $2, $3)", topic, "user:", 2)
        assert [r["key"] for r in rows] == ["user:1", "user:10"], rows
        assert await db.fetchval("SELECT count(*) FROM kv_scan($1)", topic) == 3

    async def range_():
        rows = await db.fetch("SELECT key FROM kv_range($1, $2, $3, $4)", topic, "user:10", None, None)
        assert [r["key"] for r in rows] == ["user:10", "user:2"], rows

    async def delete():
        await db.execute("SELECT kv_delete($1, $2)", topic, "user:2")
        assert await db.fetchval("SELECT kv_exists($1, $2)", topic, "user:2") is False

    # ==================================================================
    # binary keys and values: bytes, with 0x00 bytes
    # ==================================================================
    async def put_bytea():
        await db.execute("SELECT kv_put_bytea($1, $2, $3)", topic, key, value)
        assert await db.fetchval("SELECT kv_get_bytea($1, $2)", topic, key) == value

    async def exists_bytea():
        row = await db.fetchrow("SELECT kv_exists_bytea($1, $2), kv_exists_bytea($1, $3)", topic, key, key[:2])
        assert tuple(row) == (True, False), row

    async def put_many_bytea():
        await db.execute("SELECT kv_put_many_bytea($1, $2, $3)", topic,
                         [b"\x00\x02", b"\x00\x03"], [b"\x02", b""])
        rows = await db.fetch("SELECT key, value FROM kv_scan_bytea($1, $2)", topic, b"\x00")
        assert [tuple(r) for r in rows] == [(key, value), (b"\x00\x02", b"\x02"), (b"\x00\x03", b"")], rows

    async def range_delete_bytea():
        rows = await db.fetch("SELECT key FROM kv_range_bytea($1, $2, $3, $4)", topic, b"\x00\x02", None, 1)
        assert [r["key"] for r in rows] == [b"\x00\x02"], rows
        await db.execute("SELECT kv_delete_bytea($1, $2)", topic, key)
        assert await db.fetchval("SELECT kv_get_bytea($1, $2)", topic, key) is None

    async def sync():
        assert await db.fetchval("SELECT kv_sync($1)", topic) > first

    async def checksum():
        row = await db.fetchrow("SELECT applied_offset, keys FROM kv_checksum($1)", topic)
        assert row["applied_offset"] > first, row
        assert row["keys"] == 4, row

    # ==================================================================
    # errors: the SQLSTATE reaches the caller as err.sqlstate
    # ==================================================================
    async def null_key():
        assert await sqlstate(db, "SELECT kv_put($1, $2, $3)", topic, None, "v") == "22004"

    async def empty_key():
        assert await sqlstate(db, "SELECT kv_get_bytea($1, $2)", topic, b"") == "22023"

    async def not_text():
        await db.execute("SELECT kv_put_bytea($1, $2, $3)", topic, b"bin", b"\xff")
        assert await sqlstate(db, "SELECT kv_get($1, $2)", topic, "bin") == "22021"

    async def unknown_topic():
        assert await sqlstate(db, "SELECT kv_get($1, $2)", topic + "_absent", "k") == "42704"

    async def bad_topic():
        assert await sqlstate(db, "SELECT kv_get($1, $2)", "no spaces", "k") == "42602"

    await check("kv_create_topic creates the topic once", create_topic())
    await check("kv_put with strings returns the offset", put())
    await check("kv_get reads the value back", get())
    await check("kv_exists and kv_get of an absent key", exists())
    await check("kv_put_many with two lists of strings, a None deleting", batch())
    await check("kv_scan by prefix, in byte order", scan())
    await check("kv_scan with max_rows, and with the topic alone", scan_limits())
    await check("kv_range with a null bound", range_())
    await check("kv_delete removes the key", delete())
    await check("kv_put_bytea and kv_get_bytea round-trip a key with a 0x00 byte", put_bytea())
    await check("kv_exists_bytea: the key, not its prefix", exists_bytea())
    await check("kv_put_many_bytea with two lists of bytes", put_many_bytea())
    await check("kv_range_bytea and kv_delete_bytea", range_delete_bytea())
    await check("kv_sync returns the end offset", sync())
    await check("kv_checksum: the applied offset and the key count", checksum())
    await check("a null key fails with 22004", null_key())
    await check("an empty key fails with 22023", empty_key())
    await check("a binary value read as text fails with 22021", not_text())
    await check("an unknown topic fails with 42704", unknown_topic())
    await check("an invalid topic name fails with 42602", bad_topic())

    # ==================================================================
    # the foreign table: INSERT ... VALUES ($1, $2), WHERE key = $1,
    # key = ANY($1) with a list, COPY through copy_records_to_table()
    # ==================================================================
    table = topic + "_table"

    async def create_table():
        await db.execute("CREATE SERVER IF NOT EXISTS clients_kv FOREIGN DATA WRAPPER kvstore")
        await db.execute(f"CREATE FOREIGN TABLE {table} (key text COLLATE \"C\", value text) "
                         f"SERVER clients_kv OPTIONS (topic '{table}')")

    async def insert():
        status = await db.execute(f"INSERT INTO {table} (key, value) VALUES ($1, $2), ($3, $4)",
                                  "user:1", "alice", "user:2", "bob")
        assert status == "INSERT 0 2", status

    async def select_key():
        assert await db.fetchval(f"SELECT value FROM {table} WHERE key = $1", "user:2") == "bob"

    async def select_any():
        rows = await db.fetch(f"SELECT key, value FROM {table} WHERE key = ANY($1)",
                              ["user:2", "user:404", "user:1"])
        assert [tuple(r) for r in rows] == [("user:1", "alice"), ("user:2", "bob")], rows

    async def copy():
        await db.copy_records_to_table(table, records=[(f"copy:{i:03}", f"v{i}") for i in range(100)],
                                       columns=["key", "value"])
        row = await db.fetchrow(f"SELECT count(*), max(key) FROM {table} WHERE key LIKE $1", "copy:%")
        assert tuple(row) == (100, "copy:099"), row

    async def failed_insert():
        assert await sqlstate(db, f"INSERT INTO {table} VALUES ($1, $2), ($3, $4)", "ok", "1", None, "2") == "23502"
        assert await db.fetchval(f"SELECT count(*) FROM {table} WHERE key = $1", "ok") == 0
        await db.execute(f"DROP FOREIGN TABLE {table}")

    await check("a foreign table over a topic of its own", create_table())
    await check("INSERT ... VALUES ($1, $2) with strings", insert())
    await check("WHERE key = $1", select_key())
    await check("WHERE key = ANY($1) with a list", select_any())
    await check("COPY through copy_records_to_table()", copy())
    await check("a NULL key fails with 23502 and writes nothing of the statement", failed_insert())

    await db.close()
    print(f"1..{count}")
    return 1 if failed else 0


sys.exit(asyncio.run(main()))
