package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	_ "modernc.org/sqlite" // the pure Go SQLite driver, as "sqlite"
)

// River's throughput settings: more workers than hookq's 128 and a short
// fetch cooldown, which made it fastest here. Its latency runs with
// River's defaults.
const (
	riverWorkers       = 512
	riverFetchCooldown = 10 * time.Millisecond
)

// multiplyArgs is the River job of task I.
type multiplyArgs struct {
	I int `json:"i"`
}

// Kind names the job kind.
func (multiplyArgs) Kind() string { return "multiply" }

// multiplyWorker makes a job's call and records the retval as the job's
// output, which River stores in the job row when it completes the job.
type multiplyWorker struct {
	river.WorkerDefaults[multiplyArgs]
	url  string
	http *http.Client
}

// Work runs one job.
func (w *multiplyWorker) Work(ctx context.Context, job *river.Job[multiplyArgs]) error {
	retval, err := callMultiply(ctx, w.http, w.url, job.Args.I)
	if err != nil {
		return err
	}
	return river.RecordOutput(ctx, retval)
}

// riverSystem is River over one driver; riverPG and riverSQLite give it
// its database.
type riverSystem[TTx any] struct {
	e      *env
	driver riverdriver.Driver[TTx]
	// empty deletes every job.
	empty  func(ctx context.Context) error
	client *river.Client[TTx]
	cancel func() // of the subscription

	completed atomic.Int64
	done      chan int64 // IDs of jobs completed, while latency runs
}

// open migrates the database to River's schema.
func (r *riverSystem[TTx]) open(ctx context.Context, e *env, d riverdriver.Driver[TTx]) error {
	r.e, r.driver = e, d
	m, err := rivermigrate.New(d, &rivermigrate.Config{Logger: quietSlog()})
	if err != nil {
		return fmt.Errorf("river migrate: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river migrate: %w", err)
	}
	return nil
}

func (r *riverSystem[TTx]) stopClient() error {
	if r.cancel != nil {
		r.cancel()
		r.cancel = nil
	}
	if r.client == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := r.client.Stop(ctx)
	r.client = nil
	return err
}

// newClient starts a client: with workers tuned for throughput, with
// River's defaults (maxWorkers 0), or insert-only (workers false).
func (r *riverSystem[TTx]) newClient(ctx context.Context, workers bool, tuned bool) error {
	if err := r.stopClient(); err != nil {
		return err
	}
	cfg := &river.Config{Logger: quietSlog()}
	if workers {
		max := river.QueueNumWorkersMax
		if tuned {
			max = riverWorkers
			cfg.FetchCooldown = riverFetchCooldown
		} else {
			max = 100 // the MaxWorkers of River's examples; it has no default
		}
		ws := river.NewWorkers()
		river.AddWorker(ws, &multiplyWorker{url: r.e.url, http: newClient(max)})
		cfg.Workers = ws
		cfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: max}}
	}
	c, err := river.NewClient(r.driver, cfg)
	if err != nil {
		return fmt.Errorf("river client: %w", err)
	}
	r.client = c
	if !workers {
		return nil
	}

	// Count completions from River's events, sent once the completion is
	// stored.
	r.completed.Store(0)
	events, cancel := c.SubscribeConfig(&river.SubscribeConfig{ChanSize: 1 << 20,
		Kinds: []river.EventKind{river.EventKindJobCompleted}})
	r.cancel = cancel
	done := r.done
	go func() {
		for ev := range events {
			r.completed.Add(1)
			if done != nil {
				done <- ev.Job.ID
			}
		}
	}()
	if err := c.Start(ctx); err != nil {
		return fmt.Errorf("river start: %w", err)
	}
	return nil
}

func (r *riverSystem[TTx]) reset(ctx context.Context, workers bool) error {
	if err := r.stopClient(); err != nil {
		return err
	}
	if err := r.empty(ctx); err != nil {
		return fmt.Errorf("empty river_job: %w", err)
	}
	r.done = nil
	return r.newClient(ctx, false, false)
}

func (r *riverSystem[TTx]) enqueue(ctx context.Context, i int) error {
	_, err := r.client.Insert(ctx, multiplyArgs{I: i}, nil)
	return err
}

// enqueueBatch uses InsertMany: COPY FROM on Postgres, one row at a time
// in one transaction on SQLite.
func (r *riverSystem[TTx]) enqueueBatch(ctx context.Context, from, to int) error {
	params := make([]river.InsertManyParams, 0, to-from)
	for i := from; i < to; i++ {
		params = append(params, river.InsertManyParams{Args: multiplyArgs{I: i}})
	}
	_, err := r.client.InsertMany(ctx, params)
	return err
}

// run inserts in batches, then starts the workers and waits for every
// completion.
func (r *riverSystem[TTx]) run(ctx context.Context, n int) error {
	for from := 0; from < n; from += batchSize {
		if err := r.enqueueBatch(ctx, from, min(from+batchSize, n)); err != nil {
			return err
		}
	}
	if err := r.newClient(ctx, true, true); err != nil {
		return err
	}
	return waitCount(ctx, &r.completed, n)
}

func (r *riverSystem[TTx]) latency(ctx context.Context, count int, budget time.Duration) ([]time.Duration, error) {
	if err := r.stopClient(); err != nil {
		return nil, err
	}
	if err := r.empty(ctx); err != nil {
		return nil, err
	}
	r.done = make(chan int64, 16)
	if err := r.newClient(ctx, true, false); err != nil {
		return nil, err
	}
	return sequentialLatency(ctx, count, budget, func(ctx context.Context, i int) error {
		res, err := r.client.Insert(ctx, multiplyArgs{I: i}, nil)
		if err != nil {
			return err
		}
		for {
			select {
			case id := <-r.done:
				if id == res.Job.ID {
					return nil
				}
			case <-ctx.Done():
				return fmt.Errorf("job %d: %w", res.Job.ID, ctx.Err())
			}
		}
	})
}

// riverPG is River on Postgres through pgx, with a server of the bench's
// own.
type riverPG struct {
	riverSystem[pgx.Tx]
	pg   *service
	pool *pgxpool.Pool
	dir  string
}

func (r *riverPG) durability() string { return "Postgres " + postgresSettings }

func (r *riverPG) start(ctx context.Context, e *env) error {
	r.dir = filepath.Join(e.dir, "pg")
	if err := mkdir(r.dir); err != nil {
		return err
	}
	pg, err := startPostgres(ctx, r.dir)
	if err != nil {
		return err
	}
	r.pg = pg
	pool, err := pgxpool.New(ctx, fmt.Sprintf(
		"postgres://postgres@%s/postgres?sslmode=disable&pool_max_conns=16", pg.addr()))
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	r.pool = pool
	if err := waitReady(ctx, 30*time.Second, func() error { return pool.Ping(ctx) }); err != nil {
		return err
	}
	r.empty = func(ctx context.Context) error {
		_, err := pool.Exec(ctx, "TRUNCATE river_job")
		return err
	}
	return r.open(ctx, e, riverpgxv5.New(pool))
}

func (r *riverPG) stop() error {
	err := r.stopClient()
	if r.pool != nil {
		r.pool.Close()
	}
	if e := r.pg.stop(syscall.SIGINT); e != nil {
		err = e
	}
	return err
}

func (r *riverPG) servers() []int {
	if r.pg == nil || r.pg.cmd == nil {
		return nil
	}
	return []int{r.pg.pid()}
}

// size returns the bytes of the job table with its indexes and TOAST:
// Postgres's data directory also holds the write-ahead log, which it
// recycles, so its growth over a run says little.
func (r *riverPG) size(ctx context.Context) (int64, error) {
	var n int64
	err := r.pool.QueryRow(ctx, "SELECT pg_total_relation_size('river_job')").Scan(&n)
	return n, err
}

// riverSQLite is River on SQLite (modernc.org/sqlite, pure Go) in the
// bench process, through one connection as the driver advises.
type riverSQLite struct {
	riverSystem[*sql.Tx]
	db  *sql.DB
	dir string
}

func (r *riverSQLite) durability() string {
	return "SQLite WAL, synchronous=" + r.syncMode()
}

func (r *riverSQLite) syncMode() string {
	if r.e == nil {
		return "FULL"
	}
	return r.e.sqliteSync
}

func (r *riverSQLite) start(ctx context.Context, e *env) error {
	r.e = e
	r.dir = filepath.Join(e.dir, "river-sqlite")
	if err := mkdir(r.dir); err != nil {
		return err
	}
	db, err := openSQLite(filepath.Join(r.dir, "river.db"), e.sqliteSync)
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(1)
	r.db = db
	r.empty = func(ctx context.Context) error {
		// VACUUM gives the pages back, so that the next run's growth shows.
		_, err := db.ExecContext(ctx, "DELETE FROM river_job; VACUUM")
		return err
	}
	return r.open(ctx, e, riversqlite.New(db))
}

func (r *riverSQLite) stop() error {
	err := r.stopClient()
	if r.db != nil {
		if e := r.db.Close(); e != nil {
			err = e
		}
	}
	return err
}

func (r *riverSQLite) dirs() []string { return []string{r.dir} }

func (r *riverSQLite) size(ctx context.Context) (int64, error) {
	return sqliteSize(ctx, r.db, r.dir)
}

// sqliteSize moves the write-ahead log into the database file and returns
// the bytes under dir.
func sqliteSize(ctx context.Context, db *sql.DB, dir string) (int64, error) {
	if _, err := db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return 0, fmt.Errorf("checkpoint: %w", err)
	}
	return diskBytes([]string{dir}), nil
}

// openSQLite opens a SQLite database in WAL mode with the given
// synchronous setting.
func openSQLite(path, syncMode string) (*sql.DB, error) {
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(" + syncMode +
		")&_pragma=busy_timeout(10000)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	var mode string
	if err := db.QueryRow("PRAGMA synchronous").Scan(&mode); err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	return db, nil
}

// quietSlog returns a logger that drops everything.
func quietSlog() *slog.Logger { return slog.New(slog.DiscardHandler) }
