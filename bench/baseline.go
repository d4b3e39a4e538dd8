package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"go.etcd.io/bbolt"
)

// The baselines measure what the machine can do under hookq: bbolt's
// durable commits with no queue on top, and loopback HTTP with no queue
// at all.

// recordSize is the size of a baseline record, about that of a hookq task
// record for these tasks.
const recordSize = 300

// bboltSystem is raw bbolt: ULID keys, 300-byte values, one bucket,
// default sync on commit, the hashmap freelist unsynced (as hookq opens
// it). One producer puts one value per Update; 256 producers share
// commits through db.Batch (its defaults: up to 1,000 calls or 10 ms); the
// batch is 1,000 puts in one Update.
type bboltSystem struct {
	e    *env
	db   *bbolt.DB
	dir  string
	runs int
	val  []byte
}

func (b *bboltSystem) durability() string { return "fsync every commit" }

func (b *bboltSystem) start(_ context.Context, e *env) error {
	b.e = e
	b.dir = filepath.Join(e.dir, "bbolt")
	b.val = make([]byte, recordSize)
	_, _ = rand.Read(b.val)
	return mkdir(b.dir)
}

func (b *bboltSystem) stop() error {
	if b.db == nil {
		return nil
	}
	err := b.db.Close()
	b.db = nil
	return err
}

func (b *bboltSystem) dirs() []string { return []string{b.dir} }

func (b *bboltSystem) reset(context.Context, bool) error {
	db, err := openBolt(b.dir, &b.runs, b.db)
	b.db = db
	return err
}

// openBolt closes old, removes its file and opens a new one in dir.
func openBolt(dir string, runs *int, old *bbolt.DB) (*bbolt.DB, error) {
	if old != nil {
		path := old.Path()
		if err := old.Close(); err != nil {
			return nil, err
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	*runs++
	db, err := bbolt.Open(filepath.Join(dir, fmt.Sprintf("raw-%d.db", *runs)), 0o600,
		&bbolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("open bbolt: %w", err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte("tasks"))
		return err
	})
	return db, err
}

// put writes one record under a new ULID.
func put(tx *bbolt.Tx, val []byte) error {
	id := ulid.Make()
	return tx.Bucket([]byte("tasks")).Put(id[:], val)
}

func (b *bboltSystem) enqueue(_ context.Context, _ int) error {
	return b.db.Update(func(tx *bbolt.Tx) error { return put(tx, b.val) })
}

func (b *bboltSystem) enqueueConcurrent(_ context.Context, _ int) error {
	return b.db.Batch(func(tx *bbolt.Tx) error { return put(tx, b.val) })
}

func (b *bboltSystem) enqueueBatch(_ context.Context, from, to int) error {
	return b.db.Update(func(tx *bbolt.Tx) error {
		for range to - from {
			if err := put(tx, b.val); err != nil {
				return err
			}
		}
		return nil
	})
}

// bboltLoop is raw bbolt with group commit as hookq does it: one
// goroutine takes every put waiting, commits them in one Update, answers
// them, and goes again, with no timer. It has only the 256-producer
// figure.
type bboltLoop struct {
	bboltSystem
	puts chan chan error
	quit chan struct{}
	wg   sync.WaitGroup
}

func (b *bboltLoop) reset(ctx context.Context, workers bool) error {
	b.stopLoop()
	if err := b.bboltSystem.reset(ctx, workers); err != nil {
		return err
	}
	b.puts = make(chan chan error, 4096)
	b.quit = make(chan struct{})
	b.wg.Go(b.loop)
	return nil
}

func (b *bboltLoop) stopLoop() {
	if b.quit != nil {
		close(b.quit)
		b.wg.Wait()
		b.quit = nil
	}
}

func (b *bboltLoop) stop() error {
	b.stopLoop()
	return b.bboltSystem.stop()
}

// loop commits whatever is waiting, until quit.
func (b *bboltLoop) loop() {
	var waiting []chan error
	for {
		select {
		case <-b.quit:
			return
		case c := <-b.puts:
			waiting = append(waiting[:0], c)
		}
	more:
		for {
			select {
			case c := <-b.puts:
				waiting = append(waiting, c)
			default:
				break more
			}
		}
		err := b.db.Update(func(tx *bbolt.Tx) error {
			for range waiting {
				if err := put(tx, b.val); err != nil {
					return err
				}
			}
			return nil
		})
		for _, c := range waiting {
			c <- err
		}
	}
}

func (b *bboltLoop) enqueueConcurrent(ctx context.Context, _ int) error {
	c := make(chan error, 1)
	select {
	case b.puts <- c:
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-c
}

// Only the 256-producer figure: hide the other methods of bboltSystem.
func (b *bboltLoop) enqueue()      {}
func (b *bboltLoop) enqueueBatch() {}

// httpBaseline is loopback HTTP alone: the client settings of the peers'
// handlers, 128 concurrent callers (hookq's default workers) for the
// throughput, one at a time for the latency.
type httpBaseline struct {
	e      *env
	client *http.Client
}

func (h *httpBaseline) durability() string { return "nothing stored" }

func (h *httpBaseline) start(_ context.Context, e *env) error {
	h.e = e
	h.client = newClient(128)
	return nil
}

func (h *httpBaseline) stop() error { return nil }

func (h *httpBaseline) run(ctx context.Context, n int) error {
	return fanOut(ctx, n, 128, func(ctx context.Context, i int) error {
		_, err := callMultiply(ctx, h.client, h.e.url, i)
		return err
	})
}

func (h *httpBaseline) latency(ctx context.Context, count int, budget time.Duration) ([]time.Duration, error) {
	return sequentialLatency(ctx, count, budget, func(ctx context.Context, i int) error {
		_, err := callMultiply(ctx, h.client, h.e.url, i)
		return err
	})
}

// mkdir creates dir and its parents.
func mkdir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return nil
}
