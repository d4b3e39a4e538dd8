package main

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maragudk/goqite"
	"github.com/maragudk/goqite/jobs"
)

// goqite's throughput settings: as many jobs at once as hookq has
// workers, and a very short poll interval, since the runner receives one
// message per tick of it (10 ms allowed under 100 tasks/s). Its latency
// runs with the runner's defaults (100 ms).
const (
	goqiteWorkers = 128
	goqitePoll    = 100 * time.Microsecond
)

// goqiteSystem is goqite's job runner on SQLite (modernc.org/sqlite) in
// the bench process. A job stores its retval in a results table of the
// same database; goqite then deletes the message.
type goqiteSystem struct {
	e    *env
	db   *sql.DB
	q    *goqite.Queue
	dir  string
	http *http.Client

	stopRunner func()
	stored     atomic.Int64
	notify     chan int
}

func (g *goqiteSystem) durability() string {
	mode := "FULL"
	if g.e != nil {
		mode = g.e.sqliteSync
	}
	return "SQLite WAL, synchronous=" + mode
}

func (g *goqiteSystem) start(ctx context.Context, e *env) error {
	g.e = e
	g.dir = filepath.Join(e.dir, "goqite")
	if err := mkdir(g.dir); err != nil {
		return err
	}
	db, err := openSQLite(filepath.Join(g.dir, "goqite.db"), e.sqliteSync)
	if err != nil {
		return err
	}
	// SQLite has one writer; one connection queues writers in Go rather
	// than in SQLite's busy handler, which sleeps.
	db.SetMaxOpenConns(1)
	g.db = db
	if err := goqite.Setup(ctx, db); err != nil {
		return fmt.Errorf("goqite setup: %w", err)
	}
	_, err = db.ExecContext(ctx, `create table results (
		task integer primary key, retval text not null,
		created text not null default (strftime('%Y-%m-%dT%H:%M:%fZ'))) strict`)
	if err != nil {
		return fmt.Errorf("create results: %w", err)
	}
	g.q = goqite.New(goqite.NewOpts{DB: db, Name: "multiply", MaxReceive: 10})
	g.http = newClient(goqiteWorkers)
	return nil
}

func (g *goqiteSystem) stop() error {
	g.stopJobs()
	if g.db == nil {
		return nil
	}
	return g.db.Close()
}

func (g *goqiteSystem) stopJobs() {
	if g.stopRunner != nil {
		g.stopRunner()
		g.stopRunner = nil
	}
}

func (g *goqiteSystem) dirs() []string { return []string{g.dir} }

func (g *goqiteSystem) size(ctx context.Context) (int64, error) {
	return sqliteSize(ctx, g.db, g.dir)
}

func (g *goqiteSystem) reset(ctx context.Context, workers bool) error {
	g.stopJobs()
	// VACUUM gives the pages back, so that the next run's growth shows.
	if _, err := g.db.ExecContext(ctx, "delete from goqite; delete from results; vacuum"); err != nil {
		return fmt.Errorf("empty goqite: %w", err)
	}
	g.stored.Store(0)
	g.notify = nil
	return nil
}

// startJobs starts goqite's job runner with opts.
func (g *goqiteSystem) startJobs(opts jobs.NewRunnerOpts) {
	opts.Queue = g.q
	r := jobs.NewRunner(opts)
	r.Register("multiply", g.handle)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.Start(ctx) })
	g.stopRunner = func() { cancel(); wg.Wait() }
}

// handle makes a job's call and stores its result.
func (g *goqiteSystem) handle(ctx context.Context, m []byte) error {
	i := int(binary.BigEndian.Uint64(m))
	retval, err := callMultiply(ctx, g.http, g.e.url, i)
	if err != nil {
		return err
	}
	_, err = g.db.ExecContext(ctx, "insert into results (task, retval) values (?, ?)", i, string(retval))
	if err != nil {
		return fmt.Errorf("store result: %w", err)
	}
	g.stored.Add(1)
	if g.notify != nil {
		g.notify <- i
	}
	return nil
}

func (g *goqiteSystem) enqueue(ctx context.Context, i int) error {
	return jobs.Create(ctx, g.q, "multiply", binary.BigEndian.AppendUint64(nil, uint64(i)))
}

// enqueueBatch sends the tasks in one transaction.
func (g *goqiteSystem) enqueueBatch(ctx context.Context, from, to int) error {
	tx, err := g.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for i := from; i < to; i++ {
		err := jobs.CreateTx(ctx, tx, g.q, "multiply", binary.BigEndian.AppendUint64(nil, uint64(i)))
		if err != nil {
			return err
		}
	}
	return tx.Commit()
}

// run sends in batches, then starts the job runner and waits for every
// result.
func (g *goqiteSystem) run(ctx context.Context, n int) error {
	for from := 0; from < n; from += batchSize {
		if err := g.enqueueBatch(ctx, from, min(from+batchSize, n)); err != nil {
			return err
		}
	}
	g.startJobs(jobs.NewRunnerOpts{Limit: goqiteWorkers, PollInterval: goqitePoll})
	return waitCount(ctx, &g.stored, n)
}

// latency runs tasks one at a time through a runner with goqite's
// defaults.
func (g *goqiteSystem) latency(ctx context.Context, count int, budget time.Duration) ([]time.Duration, error) {
	if err := g.reset(ctx, false); err != nil {
		return nil, err
	}
	g.notify = make(chan int, 1)
	g.startJobs(jobs.NewRunnerOpts{})
	return sequentialLatency(ctx, count, budget, func(ctx context.Context, i int) error {
		if err := g.enqueue(ctx, i); err != nil {
			return err
		}
		return awaitTask(ctx, g.notify, i)
	})
}
