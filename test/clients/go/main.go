// Command clients drives every kv_* function through pgx, the way an
// application calls them: plain parameters (strings, []string, []byte,
// [][]byte, ints, nil) and no casts.  Prints TAP.
//
//	DATABASE_URL=postgresql://user@host:port/db go run .
//
// The database has the kvstore extension; the topic is created by the
// first write.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

var (
	count  int
	failed int
)

// check runs one check and prints its TAP line
func check(name string, fn func() error) {
	count++
	if err := fn(); err != nil {
		failed++
		fmt.Printf("not ok %d - %s\n# %s\n", count, name, strings.ReplaceAll(err.Error(), "\n", "\n# "))
		return
	}
	fmt.Printf("ok %d - %s\n", count, name)
}

// expect returns an error when got is not want
func expect(got, want any) error {
	if !reflect.DeepEqual(got, want) {
		return fmt.Errorf("got %#v, want %#v", got, want)
	}
	return nil
}

// sqlstate returns the SQLSTATE a query fails with
func sqlstate(ctx context.Context, db *pgx.Conn, sql string, args ...any) string {
	_, err := db.Exec(ctx, sql, args...)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return fmt.Sprintf("no SQLSTATE (%v)", err)
}

// scanKeys returns the first column of a scan's rows
func scanKeys[K any](ctx context.Context, db *pgx.Conn, sql string, args ...any) ([]K, error) {
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[K])
}

func main() {
	ctx := context.Background()
	db, err := pgx.Connect(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Printf("not ok 1 - connect\n# %v\n1..1\n", err)
		os.Exit(1)
	}
	defer db.Close(ctx)
	suffix := make([]byte, 6)
	rand.Read(suffix)
	topic := "clients_go_" + hex.EncodeToString(suffix)
	var first int64

	// ==================================================================
	// text keys and values
	// ==================================================================
	check("kv_create_topic creates the topic once", func() error {
		var created, again bool
		err = db.QueryRow(ctx, "SELECT kv_create_topic($1)", topic).Scan(&created)
		if err != nil {
			return err
		}
		err = db.QueryRow(ctx, "SELECT kv_create_topic($1)", topic).Scan(&again)
		if err != nil {
			return err
		}
		return expect([]bool{created, again}, []bool{true, false})
	})

	check("kv_put with strings returns the offset", func() error {
		err = db.QueryRow(ctx, "SELECT kv_put($1, $2, $3)", topic, "user:1", "alice").Scan(&first)
		if err != nil {
			return err
		}
		if first < 0 {
			return fmt.Errorf("offset %d", first)
		}
		return nil
	})

	check("kv_get reads the value back", func() error {
		var value string
		err = db.QueryRow(ctx, "SELECT kv_get($1, $2)", topic, "user:1").Scan(&value)
		if err != nil {
			return err
		}
		return expect(value, "alice")
	})

	check("kv_exists and kv_get of an absent key", func() error {
		var present, absent bool
		var value *string
		err := db.QueryRow(ctx, "SELECT kv_exists($1, $2), kv_exists($1, $3), kv_get($1, $3)",
			topic, "user:1", "user:404").Scan(&present, &absent, &value)
		if err != nil {
			return err
		}
		return expect([]any{present, absent, value}, []any{true, false, (*string)(nil)})
	})

	check("kv_put_many with two arrays of strings, a null deleting", func() error {
		var offset int64
		keys := []string{"user:2", "user:3", "user:10", "user:3"}
		vals := []*string{ptr("bob"), ptr("carol"), ptr("dave"), nil}
		err = db.QueryRow(ctx, "SELECT kv_put_many($1, $2, $3)", topic, keys, vals).Scan(&offset)
		if err != nil {
			return err
		}
		if offset <= first {
			return fmt.Errorf("offset %d after %d", offset, first)
		}
		return nil
	})

	check("kv_scan by prefix, in byte order", func() error {
		rows, err := db.Query(ctx, "SELECT key, value FROM kv_scan($1, $2)", topic, "user:")
		if err != nil {
			return err
		}
		pairs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (string, error) {
			var key, value string
			err := row.Scan(&key, &value)
			return key + "=" + value, err
		})
		if err != nil {
			return err
		}
		return expect(pairs, []string{"user:1=alice", "user:10=dave", "user:2=bob"})
	})

	check("kv_scan with max_rows, and with the topic alone", func() error {
		keys, err := scanKeys[string](ctx, db, "SELECT key FROM kv_scan($1, $2, $3)", topic, "user:", 2)
		if err != nil {
			return err
		}
		if err := expect(keys, []string{"user:1", "user:10"}); err != nil {
			return err
		}
		var n int
		if err := db.QueryRow(ctx, "SELECT count(*) FROM kv_scan($1)", topic).Scan(&n); err != nil {
			return err
		}
		return expect(n, 3)
	})

	check("kv_range with a null bound", func() error {
		keys, err := scanKeys[string](ctx, db, "SELECT key FROM kv_range($1, $2, $3, $4)", topic, "user:10", nil, nil)
		if err != nil {
			return err
		}
		return expect(keys, []string{"user:10", "user:2"})
	})

	check("kv_delete removes the key", func() error {
		if _, err := db.Exec(ctx, "SELECT kv_delete($1, $2)", topic, "user:2"); err != nil {
			return err
		}
		var present bool
		if err := db.QueryRow(ctx, "SELECT kv_exists($1, $2)", topic, "user:2").Scan(&present); err != nil {
			return err
		}
		return expect(present, false)
	})

	// ==================================================================
	// binary keys and values: []byte, with 0x00 bytes
	// ==================================================================
	key := []byte{0x00, 0x01, 0xff}
	value := []byte{0xde, 0xad, 0x00, 0xbe, 0xef}

	check("kv_put_bytea and kv_get_bytea round-trip a key with a 0x00 byte", func() error {
		_, err = db.Exec(ctx, "SELECT kv_put_bytea($1, $2, $3)", topic, key, value)
		if err != nil {
			return err
		}
		var got []byte
		err = db.QueryRow(ctx, "SELECT kv_get_bytea($1, $2)", topic, key).Scan(&got)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, value) {
			return fmt.Errorf("got %x, want %x", got, value)
		}
		return nil
	})

	check("kv_exists_bytea: the key, not its prefix", func() error {
		var whole, prefix bool
		err := db.QueryRow(ctx, "SELECT kv_exists_bytea($1, $2), kv_exists_bytea($1, $3)",
			topic, key, key[:2]).Scan(&whole, &prefix)
		if err != nil {
			return err
		}
		return expect([]bool{whole, prefix}, []bool{true, false})
	})

	check("kv_put_many_bytea with two arrays of []byte", func() error {
		keys := [][]byte{{0x00, 0x02}, {0x00, 0x03}}
		vals := [][]byte{{0x02}, {}}
		if _, err := db.Exec(ctx, "SELECT kv_put_many_bytea($1, $2, $3)", topic, keys, vals); err != nil {
			return err
		}
		rows, err := db.Query(ctx, "SELECT key, value FROM kv_scan_bytea($1, $2)", topic, []byte{0x00})
		if err != nil {
			return err
		}
		pairs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (string, error) {
			var k, v []byte
			err := row.Scan(&k, &v)
			return hex.EncodeToString(k) + "=" + hex.EncodeToString(v), err
		})
		if err != nil {
			return err
		}
		return expect(pairs, []string{"0001ff=dead00beef", "0002=02", "0003="})
	})

	check("kv_range_bytea and kv_delete_bytea", func() error {
		keys, err := scanKeys[[]byte](ctx, db, "SELECT key FROM kv_range_bytea($1, $2, $3, $4)",
			topic, []byte{0x00, 0x02}, nil, 1)
		if err != nil {
			return err
		}
		if err := expect(keys, [][]byte{{0x00, 0x02}}); err != nil {
			return err
		}
		if _, err := db.Exec(ctx, "SELECT kv_delete_bytea($1, $2)", topic, key); err != nil {
			return err
		}
		var got []byte
		if err := db.QueryRow(ctx, "SELECT kv_get_bytea($1, $2)", topic, key).Scan(&got); err != nil {
			return err
		}
		return expect(got, []byte(nil))
	})

	check("kv_sync returns the end offset", func() error {
		var offset int64
		if err := db.QueryRow(ctx, "SELECT kv_sync($1)", topic).Scan(&offset); err != nil {
			return err
		}
		if offset <= first {
			return fmt.Errorf("offset %d after %d", offset, first)
		}
		return nil
	})

	check("kv_checksum: the applied offset and the key count", func() error {
		var applied, keys int64
		if err := db.QueryRow(ctx, "SELECT applied_offset, keys FROM kv_checksum($1)", topic).Scan(&applied, &keys); err != nil {
			return err
		}
		if applied <= first {
			return fmt.Errorf("applied offset %d after %d", applied, first)
		}
		return expect(keys, int64(4))
	})

	// ==================================================================
	// errors: the SQLSTATE reaches the caller as (*pgconn.PgError).Code
	// ==================================================================
	check("a null key fails with 22004", func() error {
		return expect(sqlstate(ctx, db, "SELECT kv_put($1, $2, $3)", topic, nil, "v"), "22004")
	})

	check("an empty key fails with 22023", func() error {
		return expect(sqlstate(ctx, db, "SELECT kv_get_bytea($1, $2)", topic, []byte{}), "22023")
	})

	check("a binary value read as text fails with 22021", func() error {
		if _, err := db.Exec(ctx, "SELECT kv_put_bytea($1, $2, $3)", topic, []byte("bin"), []byte{0xff}); err != nil {
			return err
		}
		return expect(sqlstate(ctx, db, "SELECT kv_get($1, $2)", topic, "bin"), "22021")
	})

	check("an unknown topic fails with 42704", func() error {
		return expect(sqlstate(ctx, db, "SELECT kv_get($1, $2)", topic+"_absent", "k"), "42704")
	})

	check("an invalid topic name fails with 42602", func() error {
		return expect(sqlstate(ctx, db, "SELECT kv_get($1, $2)", "no spaces", "k"), "42602")
	})

	// ==================================================================
	// the foreign table: INSERT ... VALUES ($1, $2), WHERE key = $1,
	// key = ANY($1) with a slice, COPY through CopyFrom
	// ==================================================================
	table := topic + "_table"

	check("a foreign table over a topic of its own", func() error {
		if _, err := db.Exec(ctx, "CREATE SERVER IF NOT EXISTS clients_kv FOREIGN DATA WRAPPER kvstore"); err != nil {
			return err
		}
		_, err := db.Exec(ctx, fmt.Sprintf(`CREATE FOREIGN TABLE %s (key text COLLATE "C", value text) SERVER clients_kv OPTIONS (topic '%s')`, table, table))
		return err
	})

	check("INSERT ... VALUES ($1, $2) with strings", func() error {
		tag, err := db.Exec(ctx, "INSERT INTO "+table+" (key, value) VALUES ($1, $2), ($3, $4)",
			"user:1", "alice", "user:2", "bob")
		if err != nil {
			return err
		}
		return expect(tag.RowsAffected(), int64(2))
	})

	check("WHERE key = $1", func() error {
		var value string
		if err := db.QueryRow(ctx, "SELECT value FROM "+table+" WHERE key = $1", "user:2").Scan(&value); err != nil {
			return err
		}
		return expect(value, "bob")
	})

	check("WHERE key = ANY($1) with a slice", func() error {
		keys, err := scanKeys[string](ctx, db, "SELECT key FROM "+table+" WHERE key = ANY($1)",
			[]string{"user:2", "user:404", "user:1"})
		if err != nil {
			return err
		}
		return expect(keys, []string{"user:1", "user:2"})
	})

	check("COPY through CopyFrom", func() error {
		rows := make([][]any, 100)
		for i := range rows {
			rows[i] = []any{fmt.Sprintf("copy:%03d", i), fmt.Sprintf("v%d", i)}
		}
		n, err := db.CopyFrom(ctx, pgx.Identifier{table}, []string{"key", "value"}, pgx.CopyFromRows(rows))
		if err != nil {
			return err
		}
		var count int64
		var last string
		if err := db.QueryRow(ctx, "SELECT count(*), max(key) FROM "+table+" WHERE key LIKE $1", "copy:%").Scan(&count, &last); err != nil {
			return err
		}
		return expect([]any{n, count, last}, []any{int64(100), int64(100), "copy:099"})
	})

	check("a NULL key fails with 23502 and writes nothing of the statement", func() error {
		if err := expect(sqlstate(ctx, db, "INSERT INTO "+table+" VALUES ($1, $2), ($3, $4)", "ok", "1", nil, "2"), "23502"); err != nil {
			return err
		}
		var n int64
		if err := db.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE key = $1", "ok").Scan(&n); err != nil {
			return err
		}
		if err := expect(n, int64(0)); err != nil {
			return err
		}
		_, err := db.Exec(ctx, "DROP FOREIGN TABLE "+table)
		return err
	})


	fmt.Printf("1..%d\n", count)
	if failed > 0 {
		os.Exit(1)
	}
}

func ptr(s string) *string { return &s }
