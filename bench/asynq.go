package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// asynqSystem is asynq with a Redis server of the bench's own. A task's
// result is written with its ResultWriter and kept with the completed task
// (Retention 24 h).
type asynqSystem struct {
	// memory runs Redis with no persistence at all, whatever -redis-fsync
	// says.
	memory bool
	e      *env
	redis  *service
	dir    string
	opt    asynq.RedisClientOpt
	client *asynq.Client
	rdb    *redis.Client
	srv    *asynq.Server
	http   *http.Client

	// stored counts the results written; each is also sent on notify
	// when it is set.
	stored atomic.Int64
	notify chan int
}

// asynqWorkers is the handler concurrency of the throughput phases, the
// same as hookq's default worker count.
const asynqWorkers = 128

func (a *asynqSystem) durability() string {
	if fs := a.fsync(); fs != "no" {
		return "Redis AOF, appendfsync " + fs
	}
	return "none: Redis without AOF or snapshots"
}

// fsync returns Redis's appendfsync, or "no" for no persistence.
func (a *asynqSystem) fsync() string {
	switch {
	case a.memory:
		return "no"
	case a.e == nil:
		return "always"
	}
	return a.e.redisFsync
}

func (a *asynqSystem) start(ctx context.Context, e *env) error {
	a.e = e
	a.dir = filepath.Join(e.dir, "redis")
	if err := mkdir(a.dir); err != nil {
		return err
	}
	s, err := startRedis(ctx, a.dir, a.fsync())
	if err != nil {
		return err
	}
	a.redis = s
	a.opt = asynq.RedisClientOpt{Addr: s.addr(), PoolSize: producers}
	a.client = asynq.NewClient(a.opt)
	a.rdb = redis.NewClient(&redis.Options{Addr: s.addr()})
	a.http = newClient(asynqWorkers)
	return nil
}

func (a *asynqSystem) stop() error {
	a.stopServer()
	if a.client != nil {
		_ = a.client.Close()
	}
	if a.rdb != nil {
		_ = a.rdb.Close()
	}
	return a.redis.stop(syscall.SIGTERM)
}

func (a *asynqSystem) stopServer() {
	if a.srv != nil {
		a.srv.Shutdown()
		a.srv = nil
	}
}

func (a *asynqSystem) servers() []int {
	if a.redis == nil || a.redis.cmd == nil {
		return nil
	}
	return []int{a.redis.pid()}
}

func (a *asynqSystem) dirs() []string { return []string{a.dir} }

// size rewrites Redis's append-only file, so that it holds the data set
// rather than its history, and returns its size; 0 without one.
func (a *asynqSystem) size(ctx context.Context) (int64, error) {
	if a.fsync() == "no" {
		return 0, nil
	}
	if err := a.rdb.Do(ctx, "BGREWRITEAOF").Err(); err != nil {
		return 0, fmt.Errorf("rewrite AOF: %w", err)
	}
	err := waitReady(ctx, time.Minute, func() error {
		info, err := a.rdb.Info(ctx, "persistence").Result()
		if err != nil {
			return err
		}
		if strings.Contains(info, "aof_rewrite_in_progress:0") &&
			strings.Contains(info, "aof_rewrite_scheduled:0") {
			return nil
		}
		return fmt.Errorf("AOF rewrite in progress")
	})
	if err != nil {
		return 0, err
	}
	return diskBytes([]string{filepath.Join(a.dir, "appendonlydir")}), nil
}

func (a *asynqSystem) reset(ctx context.Context, workers bool) error {
	a.stopServer()
	if err := a.rdb.FlushAll(ctx).Err(); err != nil {
		return fmt.Errorf("flush redis: %w", err)
	}
	a.stored.Store(0)
	a.notify = nil
	return nil
}

// startServer starts asynq's workers with cfg, quiet.
func (a *asynqSystem) startServer(cfg asynq.Config) error {
	cfg.Logger = quietLogger{}
	cfg.LogLevel = asynq.FatalLevel
	a.srv = asynq.NewServer(a.opt, cfg)
	mux := asynq.NewServeMux()
	mux.HandleFunc("multiply", a.handle)
	if err := a.srv.Start(mux); err != nil {
		return fmt.Errorf("start asynq server: %w", err)
	}
	return nil
}

// handle makes task's call and writes its result.
func (a *asynqSystem) handle(ctx context.Context, t *asynq.Task) error {
	i := int(binary.BigEndian.Uint64(t.Payload()))
	retval, err := callMultiply(ctx, a.http, a.e.url, i)
	if err != nil {
		return err
	}
	if _, err := t.ResultWriter().Write(retval); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	a.stored.Add(1)
	if a.notify != nil {
		a.notify <- i
	}
	return nil
}

func (a *asynqSystem) enqueue(ctx context.Context, i int) error {
	payload := binary.BigEndian.AppendUint64(nil, uint64(i))
	_, err := a.client.EnqueueContext(ctx, asynq.NewTask("multiply", payload),
		asynq.MaxRetry(9), asynq.Retention(24*time.Hour))
	return err
}

// run enqueues from 256 producers (asynq has no batch API), then starts
// the workers and waits for every result.
func (a *asynqSystem) run(ctx context.Context, n int) error {
	if err := fanOut(ctx, n, producers, a.enqueue); err != nil {
		return err
	}
	if err := a.startServer(asynq.Config{Concurrency: asynqWorkers}); err != nil {
		return err
	}
	return waitCount(ctx, &a.stored, n)
}

// latency runs tasks one at a time through a server with asynq's default
// configuration.
func (a *asynqSystem) latency(ctx context.Context, count int, budget time.Duration) ([]time.Duration, error) {
	if err := a.reset(ctx, false); err != nil {
		return nil, err
	}
	a.notify = make(chan int, 1)
	if err := a.startServer(asynq.Config{}); err != nil {
		return nil, err
	}
	return sequentialLatency(ctx, count, budget, func(ctx context.Context, i int) error {
		if err := a.enqueue(ctx, i); err != nil {
			return err
		}
		return awaitTask(ctx, a.notify, i)
	})
}

// quietLogger discards asynq's logs.
type quietLogger struct{}

func (quietLogger) Debug(...any) {}
func (quietLogger) Info(...any)  {}
func (quietLogger) Warn(...any)  {}
func (quietLogger) Error(...any) {}
func (quietLogger) Fatal(...any) {}

// waitCount polls c every 2 ms until it reaches n.
func waitCount(ctx context.Context, c *atomic.Int64, n int) error {
	for c.Load() < int64(n) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d results stored: %w", c.Load(), n, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// awaitTask waits for task i to be reported on ch.
func awaitTask(ctx context.Context, ch <-chan int, i int) error {
	for {
		select {
		case got := <-ch:
			if got == i {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("task %d: %w", i, ctx.Err())
		}
	}
}
