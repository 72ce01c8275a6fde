// gokv: the Go baseline of bench/report.sh.
//
// A client of the design kvstore replaces: one franz-go client produces
// and consumes a single-partition topic into a go-memdb table in its own
// memory.  A write produces (acks=all, idempotent: franz-go's defaults)
// and blocks until its own consumer has applied the record's offset; a
// batch produces all its records, then waits once for the highest offset
// (not atomic); a new client replays the topic up to the high watermark
// before it serves, applying each fetch in one memdb transaction.  Unlike
// that design, transaction markers count as applied offsets, so that it can
// read topics written in transactions.
//
//	gokv put     BROKERS TOPIC COUNT           latency of each Put, in µs
//	gokv batch   BROKERS TOPIC SIZE SECONDS    records/s of batches of SIZE
//	gokv txn     BROKERS TOPIC SIZE COUNT      µs of each franz-go transaction
//	                                           of SIZE records, committed
//	                                           and consumed (read_committed)
//	gokv restore BROKERS TOPIC                 records and seconds to replay
//
// Keys are key-%08d, values value-%08d.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

type entry struct {
	Key   string
	Value []byte
}

// store is one client: a Kafka client and the table it fills
type store struct {
	kafka *kgo.Client
	db    *memdb.MemDB
	topic string

	mu      sync.Mutex
	applied int64         // highest offset applied
	changed chan struct{} // closed when applied moves
	records int64         // records applied
}

func die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "gokv: "+format+"\n", args...)
	os.Exit(1)
}

func newStore(ctx context.Context, brokers, topic string, opts ...kgo.Opt) *store {
	schema := &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		"kv": {Name: "kv", Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
		}},
	}}
	db, err := memdb.NewMemDB(schema)
	if err != nil {
		die("memdb: %v", err)
	}
	all := append([]kgo.Opt{
		kgo.SeedBrokers(strings.Split(brokers, ",")...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxBytes(100 << 20),
		kgo.FetchMaxPartitionBytes(100 << 20),
		// Transaction markers occupy offsets: seeing them lets a wait
		// for the high watermark end on a topic written in transactions
		kgo.KeepControlRecords(),
	}, opts...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		die("client: %v", err)
	}
	s := &store{kafka: cl, db: db, topic: topic, applied: -1, changed: make(chan struct{})}
	go s.consume(ctx)
	return s
}

// consume applies every fetch in one memdb transaction, then wakes writers
func (s *store) consume(ctx context.Context) {
	for ctx.Err() == nil {
		fetches := s.kafka.PollFetches(ctx)
		max := int64(-1)
		n := int64(0)
		txn := s.db.Txn(true)
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Offset > max {
				max = r.Offset
			}
			if r.Attrs.IsControl() {
				return // a transaction marker: its offset counts as applied
			}
			if r.Value == nil {
				_, _ = txn.DeleteAll("kv", "id", string(r.Key))
			} else if err := txn.Insert("kv", &entry{Key: string(r.Key), Value: r.Value}); err != nil {
				die("insert: %v", err)
			}
			n++
		})
		txn.Commit()
		if max >= 0 {
			s.mu.Lock()
			s.applied = max
			s.records += n
			close(s.changed)
			s.changed = make(chan struct{})
			s.mu.Unlock()
		}
	}
}

// wait blocks until offset is applied
func (s *store) wait(ctx context.Context, offset int64) {
	for {
		s.mu.Lock()
		if s.applied >= offset {
			s.mu.Unlock()
			return
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			die("wait: %v", ctx.Err())
		}
	}
}

func (s *store) write(ctx context.Context, recs []*kgo.Record) {
	res := s.kafka.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		die("produce: %v", err)
	}
	max := int64(-1)
	for _, r := range res {
		if r.Record.Offset > max {
			max = r.Record.Offset
		}
	}
	s.wait(ctx, max)
}

// highWatermark is the end of the topic's partition
func highWatermark(ctx context.Context, cl *kgo.Client, topic string) int64 {
	offsets, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		die("end offset: %v", err)
	}
	o, ok := offsets.Lookup(topic, 0)
	if !ok || o.Err != nil {
		die("end offset of %s: %v", topic, o.Err)
	}
	return o.Offset
}

func record(topic string, n int) *kgo.Record {
	return &kgo.Record{Topic: topic, Partition: 0,
		Key: []byte(fmt.Sprintf("key-%08d", n)), Value: []byte(fmt.Sprintf("value-%08d", n))}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		die("not a number: %s", s)
	}
	return n
}

func main() {
	if len(os.Args) < 4 {
		die("usage: gokv put|batch|txn|restore BROKERS TOPIC ...")
	}
	ctx := context.Background()
	cmd, brokers, topic := os.Args[1], os.Args[2], os.Args[3]
	args := os.Args[4:]
	manual := kgo.RecordPartitioner(kgo.ManualPartitioner())

	switch cmd {
	case "put":
		s := newStore(ctx, brokers, topic, manual)
		s.wait(ctx, highWatermark(ctx, s.kafka, topic)-1)
		count := atoi(args[0])
		for i := 0; i < count+20; i++ {
			start := time.Now()
			s.write(ctx, []*kgo.Record{record(topic, i%100000)})
			if i >= 20 { // the first writes warm up
				fmt.Println(time.Since(start).Microseconds())
			}
		}
	case "batch":
		s := newStore(ctx, brokers, topic, manual)
		s.wait(ctx, highWatermark(ctx, s.kafka, topic)-1)
		size, seconds := atoi(args[0]), atoi(args[1])
		n := 0
		batch := func() {
			recs := make([]*kgo.Record, size)
			for j := range recs {
				recs[j] = record(topic, (n+j)%1000000)
			}
			s.write(ctx, recs)
			n += size
		}
		batch() // warm up
		n = 0
		start := time.Now()
		for time.Since(start) < time.Duration(seconds)*time.Second {
			batch()
		}
		fmt.Printf("%.0f\n", float64(n)/time.Since(start).Seconds())
	case "txn":
		size, count := atoi(args[0]), atoi(args[1])
		s := newStore(ctx, brokers, topic, manual,
			kgo.TransactionalID(fmt.Sprintf("kvstore-bench-gokv-%d", os.Getpid())),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()))
		s.wait(ctx, highWatermark(ctx, s.kafka, topic)-1)
		for i := 0; i < count+5; i++ {
			start := time.Now()
			if err := s.kafka.BeginTransaction(); err != nil {
				die("begin: %v", err)
			}
			recs := make([]*kgo.Record, size)
			for j := range recs {
				recs[j] = record(topic, (i*size+j)%1000000)
			}
			res := s.kafka.ProduceSync(ctx, recs...)
			if err := res.FirstErr(); err != nil {
				die("produce: %v", err)
			}
			if err := s.kafka.EndTransaction(ctx, kgo.TryCommit); err != nil {
				die("commit: %v", err)
			}
			max := int64(-1)
			for _, r := range res {
				if r.Record.Offset > max {
					max = r.Record.Offset
				}
			}
			s.wait(ctx, max)
			if i >= 5 {
				fmt.Println(time.Since(start).Microseconds())
			}
		}
	case "restore":
		start := time.Now()
		s := newStore(ctx, brokers, topic)
		s.wait(ctx, highWatermark(ctx, s.kafka, topic)-1)
		elapsed := time.Since(start).Seconds()
		s.mu.Lock()
		fmt.Printf("%d %.3f\n", s.records, elapsed)
		s.mu.Unlock()
	default:
		die("unknown command %s", cmd)
	}
}
